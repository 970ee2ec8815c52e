/**
 * `sessionlock list`: the sessions of a data directory with their sizes and last access,
 * streamed as the directory is read.
 * @module
 */
import fs from 'node:fs';
import { type DataDirEntry, isForeignDataFile, scanDataDir } from '../data-dir.js';
import { StorageError } from '../errors.js';
import { COMMON_HELP, type Command, dataDirOf, EXIT, storageTypeOf } from './args.js';
import { messageOf, type Output, plural, printableName } from './output.js';

const HELP = `Usage: sessionlock list --data-dir <dir> [options]

Lists the file and dbm sessions in the data directory, in directory order: when each was
last accessed, its size in bytes, its backend and its id. The last access is the time
its file was last written (a save, or the access time a load records every
accessResolution seconds): the time sweep compares with --timeout. A session file that
cannot be read (another user's) is reported on stderr and the listing goes on; the exit
status is then 1.

Options:
  --json                one JSON object per line: {"id","type","size","accessed","file"}

${COMMON_HELP}

Example:
  $ sessionlock list --data-dir ./sessions
  LAST ACCESS (UTC)             BYTES  TYPE  ID
  2025-06-01T07:09:45.900Z      12288  dbm   mz2x7rq6b4ht5vkw3ynp2gd7c4sfje6a
  2025-06-01T09:14:03.112Z       2048  file  q3v7k2m4t5yxw6r2cz4hj7nb5fa2dkep
  2 sessions, 14336 bytes`;

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
    const { out, err } = invocation;
    if (!json) await out.line(row('LAST ACCESS (UTC)', 'BYTES', 'TYPE', 'ID'));
    let count = 0;
    let bytes = 0;
    let unreadable = 0;
    for await (const entry of scanDataDir(dataDir, type)) {
      if (out.failure) break;
      if (entry.kind !== 'data') continue;
      const stat = await readableStats(entry, err);
      if (stat === 'unreadable') unreadable++;
      if (!stat || stat === 'unreadable') continue;
      count++;
      bytes += stat.size;
      await (json ? out.json(record(entry, stat)) : out.line(tableRow(entry, stat)));
    }
    if (!json) await out.line(summary(count, bytes, unreadable));
    return unreadable > 0 ? EXIT.failure : EXIT.ok;
  },
};

function record(entry: DataDirEntry, stat: fs.Stats) {
  return {
    id: entry.id ?? null,
    type: entry.type,
    size: stat.size,
    accessed: stat.mtime.toISOString(),
    file: entry.path,
  };
}

function tableRow(entry: DataDirEntry, stat: fs.Stats): string {
  const id = entry.id === undefined ? `(hashed name: ${entry.name})` : printableName(entry.id);
  return row(stat.mtime.toISOString(), String(stat.size), entry.type, id);
}

function row(time: string, size: string, type: string, id: string): string {
  return `${time.padEnd(TIME_WIDTH)} ${size.padStart(SIZE_WIDTH)}  ${type.padEnd(TYPE_WIDTH)}  ${id}`;
}

function summary(count: number, bytes: number, unreadable: number): string {
  const failures = unreadable > 0 ? `; ${plural(unreadable, 'file')} could not be read` : '';
  return `${plural(count, 'session')}, ${plural(bytes, 'byte')}${failures}`;
}

/** The stats of the entry's data file if it is (still) a session file; `'unreadable'`, said on `err`, when it cannot be read. */
async function readableStats(entry: DataDirEntry, err: Output): Promise<fs.Stats | undefined | 'unreadable'> {
  try {
    const stat = lstatIfFile(entry.path);
    return stat && !isForeignDataFile(entry) ? stat : undefined;
  } catch (error) {
    if (!(error instanceof StorageError)) throw error;
    await err.line(`sessionlock list: ${messageOf(error)}`);
    return 'unreadable';
  }
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
