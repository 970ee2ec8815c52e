/**
 * Reading a data directory: streams the entries that belong to file and dbm namespaces
 * (data files, lock files, takeover guards, temporary files, LMDB lock files) without
 * ever holding the whole listing in memory. Used by the sweep and the CLI.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { StorageError } from './errors.js';
import { lstatOrUndefined, readFileHead, TEMP_DIRECTORY, TEMP_SUFFIX } from './files.js';
import { ASIDE_SUFFIX } from './lock/file-lock.js';
import { DBM_EXTENSION } from './namespace/dbm.js';
import { FILE_EXTENSION } from './namespace/file.js';
import { isNamespaceFileHead, NAMESPACE_FILE_HEAD_BYTES } from './namespace/file-format.js';
import { lmdbLockFile } from './namespace/lmdb-environments.js';
import { isLmdbFileHead, LMDB_FILE_HEAD_BYTES } from './namespace/lmdb-file-check.js';
import { namespaceOf, storageName } from './namespace/storage-path.js';
import type { SweepType } from './sweep.js';

/**
 * An entry of a data directory that belongs to a file or dbm namespace: its data file, its
 * lock file (`<data>.lock`, see FileLock) and takeover mutex (`<data>.lock.takeover`), either
 * of them as a takeover renames it aside (`<lock entry>.<hex>.aside`, kind `takeover`),
 * a temporary file of the file backend (`.tmp/<data>.<hex>.tmp`, or beside the data file as
 * older versions wrote them), or LMDB's `<data>-lock` file.
 * @internal
 */
export interface DataDirEntry {
  /** The entry's name in the directory. */
  name: string;
  /** Its absolute path. */
  path: string;
  kind: 'data' | 'lock' | 'takeover' | 'temp' | 'lmdb-lock';
  type: SweepType;
  /** The namespace (session id), or `undefined` for a hashed name. */
  id: string | undefined;
  /** The absolute path of the data file the entry belongs to. */
  dataFile: string;
}

const EXTENSIONS: Readonly<Record<SweepType, string>> = { file: FILE_EXTENSION, dbm: DBM_EXTENSION };
const HASHED_NAME = /^\+[0-9a-f]{64}$/;
const TEMP_NAME = new RegExp(`^(.+${escapeRegExp(FILE_EXTENSION)})\\.[0-9a-f]+${escapeRegExp(TEMP_SUFFIX)}$`);
const ASIDE_NAME = new RegExp(`^(.+)\\.[0-9a-f]+${escapeRegExp(ASIDE_SUFFIX)}$`);

/**
 * Streams the entries of `dataDir` that belong to file or dbm namespaces (of `type`, or
 * both), in directory order, then the temporary files in its `.tmp` directory; unrelated
 * names are skipped. Throws {@link StorageError} naming the directory when it cannot be read.
 * @internal
 */
export async function* scanDataDir(dataDir: string, type?: SweepType): AsyncGenerator<DataDirEntry> {
  const dir = path.resolve(dataDir);
  for await (const name of streamDirectory(dir)) {
    const entry = classify(dir, name);
    if (entry && (type === undefined || entry.type === type)) yield entry;
  }
  const tempDir = path.join(dir, TEMP_DIRECTORY);
  if (type === 'dbm' || !lstatOrUndefined(tempDir)?.isDirectory()) return;
  for await (const name of streamDirectory(tempDir)) {
    const dataName = TEMP_NAME.exec(name)?.[1];
    const entry = dataName && entryOf(dir, name, 'temp', 'file', dataName);
    if (entry) yield { ...entry, path: path.join(tempDir, name) };
  }
}

/**
 * Whether the data file of `entry` is another program's file that merely has a session's
 * name (a `package.json` in a directory given as `dataDir` by mistake): not in the file
 * backend's format, not an LMDB file. Such files are never removed or listed. `false` when
 * the file is gone; throws {@link StorageError} when it cannot be read.
 * @internal
 */
export function isForeignDataFile(entry: DataDirEntry): boolean {
  const isOurs = entry.type === 'file' ? isNamespaceFileHead : isLmdbFileHead;
  const bytes = entry.type === 'file' ? NAMESPACE_FILE_HEAD_BYTES : LMDB_FILE_HEAD_BYTES;
  let head: Buffer | undefined;
  try {
    head = readFileHead(entry.dataFile, bytes);
  } catch (error) {
    throw new StorageError(entry.dataFile, 'read', { cause: error });
  }
  return head !== undefined && !isOurs(head);
}

/** The names in `dir`, read a few at a time. */
async function* streamDirectory(dir: string): AsyncGenerator<string> {
  let handle: fs.Dir;
  try {
    handle = await fs.promises.opendir(dir);
  } catch (error) {
    throw new StorageError(dir, 'read the data directory', { cause: error });
  }
  const entries = handle[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<fs.Dirent>;
      try {
        next = await entries.next();
      } catch (error) {
        throw new StorageError(dir, 'read the data directory', { cause: error });
      }
      if (next.done) return;
      yield next.value.name;
    }
  } finally {
    await entries.return?.().catch(() => {});
  }
}

function classify(dir: string, name: string): DataDirEntry | undefined {
  const temp = TEMP_NAME.exec(name)?.[1];
  if (temp) return entryOf(dir, name, 'temp', 'file', temp);
  const setAside = ASIDE_NAME.exec(name)?.[1];
  if (setAside) {
    const entry = classify(dir, setAside);
    const isLock = entry?.kind === 'lock' || entry?.kind === 'takeover';
    return isLock ? { ...entry, name, path: path.join(dir, name), kind: 'takeover' } : undefined;
  }
  for (const type of ['file', 'dbm'] as const) {
    const extension = EXTENSIONS[type];
    const kinds: [DataDirEntry['kind'], string][] = [
      ['data', extension],
      ['lock', `${extension}.lock`],
      ['takeover', `${extension}.lock.takeover`],
    ];
    if (type === 'dbm') kinds.push(['lmdb-lock', lmdbLockFile(extension)]);
    for (const [kind, suffix] of kinds) {
      if (name.endsWith(suffix)) return entryOf(dir, name, kind, type, name.slice(0, -suffix.length) + extension);
    }
  }
  return undefined;
}

/** The entry, if `dataName` is a name the backend of `type` gives a namespace's data file. */
function entryOf(dir: string, name: string, kind: DataDirEntry['kind'], type: SweepType, dataName: string) {
  const stem = dataName.slice(0, -EXTENSIONS[type].length);
  const id = namespaceOf(stem);
  if (id === undefined ? !HASHED_NAME.test(stem) : storageName(id) !== stem) return undefined;
  return { name, path: path.join(dir, name), kind, type, id, dataFile: path.join(dir, dataName) };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
