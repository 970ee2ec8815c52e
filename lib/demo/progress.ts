/**
 * A one-line progress bar for the terminal. On a non-TTY stream (CI logs) it stays quiet
 * until `finish()`, which prints the final line.
 * @module
 */
import type { Writable } from 'node:stream';

export interface Progress {
  update(done: number, note?: string): void;
  finish(note?: string): void;
}

const WIDTH = 24;

export function progressBar(
  label: string,
  total: number,
  stream: Writable & { isTTY?: boolean } = process.stderr,
): Progress {
  let last = 0;
  const render = (done: number, note = '') => {
    const filled = total > 0 ? Math.min(WIDTH, Math.round((done / total) * WIDTH)) : WIDTH;
    return `${label} [${'█'.repeat(filled)}${'░'.repeat(WIDTH - filled)}] ${done}/${total}${note ? `  ${note}` : ''}`;
  };
  return {
    update(done, note) {
      if (!stream.isTTY || Date.now() - last < 50) return;
      last = Date.now();
      stream.write(`\r\x1b[2K${render(done, note)}`);
    },
    finish(note) {
      stream.write(`${stream.isTTY ? '\r\x1b[2K' : ''}${render(total, note)}\n`);
    },
  };
}
