/**
 * `sessionlock list`: the sessions of a data directory with their sizes and last access,
 * streamed as the directory is read.
 * @module
 */
import fs from 'node:fs';
import { isForeignDataFile, scanDataDir } from '../data-dir.js';
import { StorageError } from '../errors.js';
import { COMMON_HELP, type Command, dataDirOf, EXIT, storageTypeOf } from './args.js';
import { plural, printableName } from './output.js';

const HELP = `Usage: sessionlock list --data-dir <dir> [options]

Lists the file and dbm sessions in the data directory, in directory order: when each was
last accessed, its size in bytes, its backend and its id. The last access is the time
its file was last written (a save, or the access time a load records every
accessResolution seconds): the time sweep compares with --timeout.

Options:
  --json                one JSON object per line: {"id","type","size","accessed","file"}

${COMMON_HELP}

Example:
  $ sessionlock list --data-dir ./sessions
  LAST ACCESS (UTC)             BYTES  TYPE  ID
  2025-06-01T09:14:03.112Z        192  file  q3v7k2m4t5yxw6r2cz4hj7nb5fa2dkep
  2025-06-01T07:09:45.900Z      12288  dbm   mz2x7rq6b4ht5vkw3ynp2gd7c4sfje6a
  2 sessions, 12480 bytes`;

const TIME_WIDTH = 24;
const SIZE_WIDTH = 10;
const TYPE_WIDTH = 4;

export const list: Command = {
  name: 'list',
  synopsis: 'list',
  summary: 'list the sessions: last access, size in bytes, type, id',
  help: HELP,
  options: { json: { type: 'boolean' } },
  async run(invocation) {
    const dataDir = dataDirOf(invocation);
    const type = storageTypeOf(invocation);
    const json = invocation.values.json === true;
    const { out } = invocation;
    if (!json) await out.line(row('LAST ACCESS (UTC)', 'BYTES', 'TYPE', 'ID'));
    let count = 0;
    let bytes = 0;
    for await (const entry of scanDataDir(dataDir, type)) {
      if (out.failure) break;
      if (entry.kind !== 'data') continue;
      const stat = lstatIfFile(entry.path);
      if (!stat || isForeignDataFile(entry)) continue;
      count++;
      bytes += stat.size;
      const accessed = stat.mtime.toISOString();
      if (json) await out.json({ id: entry.id ?? null, type: entry.type, size: stat.size, accessed, file: entry.path });
      else
        await out.line(
          row(
            accessed,
            String(stat.size),
            entry.type,
            entry.id === undefined ? `(hashed name: ${entry.name})` : printableName(entry.id),
          ),
        );
    }
    if (!json) await out.line(`${plural(count, 'session')}, ${plural(bytes, 'byte')}`);
    return EXIT.ok;
  },
};

function row(time: string, size: string, type: string, id: string): string {
  return `${time.padEnd(TIME_WIDTH)} ${size.padStart(SIZE_WIDTH)}  ${type.padEnd(TYPE_WIDTH)}  ${id}`;
}

/** The entry's stats if it is (still) a regular file; symbolic links are not followed. */
function lstatIfFile(file: string): fs.Stats | undefined {
  try {
    const stat = fs.lstatSync(file);
    return stat.isFile() ? stat : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StorageError(file, 'read', { cause: error });
  }
}
