/**
 * Small synchronous file-system helpers shared by the file and dbm backends, the lock and
 * the CLI. Each touches one small file or directory; errors other than "missing" become
 * {@link StorageError}s naming the path.
 * @module
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SessionlockError, StorageError } from './errors.js';

/** The file's stats, or `undefined` when it does not exist. */
export function statOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file, { throwIfNoEntry: false });
  } catch (error) {
    throw new StorageError(file, 'read', { cause: error });
  }
}

/** The entry's own stats (symlinks are not followed), or `undefined` when it does not exist. */
export function lstatOrUndefined(file: string): fs.Stats | undefined {
  return fs.lstatSync(file, { throwIfNoEntry: false });
}

/** A descriptor of `file` opened for reading, or `undefined` when it does not exist; other errors throw like `fs`. */
export function openIfExists(file: string): number | undefined {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Room for a typical namespace file, reused by every {@link readWholeFile} (a larger file gets its own). */
const readBuffer = Buffer.allocUnsafe(16 * 1024);

/**
 * The whole content of `file` (a copy), or `undefined` when it does not exist; other errors
 * throw like `fs`. Unlike `fs.readFileSync` it does not ask the size first: small files are
 * read in one call.
 */
export function readWholeFile(file: string): Buffer | undefined {
  const fd = openIfExists(file);
  if (fd === undefined) return undefined;
  try {
    let buffer = readBuffer;
    let length = 0;
    for (;;) {
      const read = fs.readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) {
        const content = buffer.subarray(0, length);
        return buffer === readBuffer ? Buffer.from(content) : content;
      }
      length += read;
      if (length === buffer.length) {
        const larger = Buffer.allocUnsafe(2 * buffer.length);
        buffer.copy(larger);
        buffer = larger;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates `dir` (and its parents) when missing; returns whether it had to. */
export function ensureDirectory(dir: string): boolean {
  if (fs.existsSync(dir)) return false;
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new StorageError(dir, 'create the data directory', { cause: error });
  }
  return true;
}

/** Removes a file; a missing one is fine. */
export function removeFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new StorageError(file, 'remove', { cause: error });
  }
}

/** The suffix of temporary files, so sweeps can find ones a killed writer left behind. */
export const TEMP_SUFFIX = '.tmp';

/** The directory (inside a data directory) where commits write their temporary files. */
export const TEMP_DIRECTORY = '.tmp';

/**
 * Replaces `file` with `bytes` atomically: writes a uniquely named temporary file (in
 * `tempDir`, on the same file system), runs `beforeRename` (a last ownership check), then
 * renames it into place. Readers see the old content or the new, never a mix; on any
 * failure the old content stays.
 */
export function writeFileAtomically(
  file: string,
  bytes: Buffer,
  { tempDir, durable, beforeRename }: { tempDir: string; durable: boolean; beforeRename: () => void },
): void {
  const temp = path.join(tempDir, `${path.basename(file)}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  try {
    ensureDirectory(tempDir);
    const fd = fs.openSync(temp, 'wx', 0o600);
    try {
      fs.writeSync(fd, bytes);
      if (durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    beforeRename();
    fs.renameSync(temp, file);
  } catch (error) {
    try {
      fs.unlinkSync(temp);
    } catch {}
    if (error instanceof SessionlockError) throw error;
    throw new StorageError(file, 'write', { cause: error });
  }
  if (durable) syncDirectory(path.dirname(file));
}

/**
 * Writes `bytes` over `file` at `offset` in one call, without changing its size or inode
 * (fsynced with `durable`). The file must exist.
 */
export function overwriteFileAt(file: string, offset: number, bytes: Buffer, { durable }: { durable: boolean }): void {
  try {
    const fd = fs.openSync(file, 'r+');
    try {
      const written = fs.writeSync(fd, bytes, 0, bytes.length, offset);
      if (written !== bytes.length) throw new Error(`wrote ${written} of ${bytes.length} bytes`);
      if (durable) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    throw new StorageError(file, 'write', { cause: error });
  }
}

/** Removes the temporary files of `file` in `tempDir` (what a writer killed mid-commit left). */
export function removeTemporaryFiles(tempDir: string, file: string): void {
  const prefix = `${path.basename(file)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(tempDir);
  } catch {
    return;
  }
  for (const name of names)
    if (name.startsWith(prefix) && name.endsWith(TEMP_SUFFIX)) removeFile(path.join(tempDir, name));
}

function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
