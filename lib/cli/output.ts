/**
 * Writing the CLI's output: line by line, waiting when the reader is slower (a pipe), so
 * listing 100,000 sessions never buffers them all; and the formats it shows values in.
 * @module
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { shortenSessionIds } from '../session-id.js';

/**
 * One of the CLI's output streams. A write error (the reader went away: EPIPE; a full disk:
 * ENOSPC) is recorded in {@link Output.failure} instead of crashing, and later lines are
 * dropped, so a command such as a sweep can finish its work.
 */
export class Output {
  readonly #stream: Writable;
  #failure: NodeJS.ErrnoException | undefined;

  constructor(stream: Writable) {
    this.#stream = stream;
    stream.on('error', (error: NodeJS.ErrnoException) => {
      this.#failure ??= error;
    });
  }

  /** The first error writing to the stream, if any: nothing is written after it. */
  get failure(): NodeJS.ErrnoException | undefined {
    return this.#failure;
  }

  /** Writes `text` and a newline; resolves once the stream can take more (at once after a write error). */
  async line(text = ''): Promise<void> {
    if (this.#failure || this.#stream.write(`${text}\n`)) return;
    await once(this.#stream, 'drain').catch(() => {});
  }

  /** Writes `value` as one line of JSON. */
  json(value: unknown): Promise<void> {
    return this.line(JSON.stringify(value));
  }
}

/** Printable ASCII without spaces: what a name may be to be shown as it is. */
const PLAIN_NAME = /^[!-~]+$/;
/** What would change how a terminal shows a line: controls, format characters (bidi overrides, zero-width), line separators. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/**
 * A namespace name for text output: as it is when plain (generated ids are), else as a JSON
 * string with every unprintable character escaped, so a name can neither forge a row nor
 * send escape sequences to the terminal.
 */
export function printableName(name: string): string {
  if (PLAIN_NAME.test(name)) return name;
  return JSON.stringify(name).replace(UNPRINTABLE, escapeCodeUnits);
}

function escapeCodeUnits(text: string): string {
  return Array.from(
    { length: text.length },
    (_, index) => `\\u${text.charCodeAt(index).toString(16).padStart(4, '0')}`,
  ).join('');
}

/** `3725000` → `1 h 2 min`; `42000` → `42 s`. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** `1` → `1 session`, `2` → `2 sessions`. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}

/**
 * An error's message for the administrator at the terminal: with the session id or path its
 * `namespace`, `id` or `location` holds written out whole where the message shortens it (the
 * library shortens ids in messages, which also reach logs and error pages).
 */
export function messageOf(error: Error): string {
  let message = error.message;
  for (const name of ['location', 'namespace', 'id'] as const) {
    const whole = (error as Error & Partial<Record<typeof name, unknown>>)[name];
    if (typeof whole === 'string') message = message.split(shortenSessionIds(whole)).join(whole);
  }
  return message;
}
