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

/** Opening flags of {@link openIfExists}: reading, and never waiting for a writer (a FIFO) or a device. */
const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);
/** O_NOFOLLOW, where the platform has it. */
const NO_FOLLOW = fs.constants.O_NOFOLLOW ?? 0;

/**
 * A descriptor of the regular file `file` opened for reading, or `undefined` when it does
 * not exist; other errors throw like `fs`. Anything but a regular file (a FIFO, a device, a
 * directory, a symbolic link) throws an error naming what it is, without blocking: a FIFO is
 * opened non-blocking, so a FIFO without a writer does not freeze the process, a device is
 * never read, and a link's target is never opened.
 */
export function openIfExists(file: string): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, READ_FLAGS | NO_FOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP' && lstatOrUndefined(file)?.isSymbolicLink()) {
      throw notRegularFile('a symbolic link', 'ELOOP');
    }
    throw error;
  }
  try {
    const stats = fs.fstatSync(fd);
    if (!stats.isFile()) throw notRegularFile(kindOf(stats), stats.isDirectory() ? 'EISDIR' : 'EFTYPE');
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * The error of {@link openIfExists} for something other than a regular file: `code` is
 * `EISDIR` for a directory, `ELOOP` for a symbolic link, `EFTYPE` otherwise.
 */
function notRegularFile(kind: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`it is ${kind}, not a regular file`), { code });
}

function kindOf(stats: fs.Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'an unknown kind of file';
}

/** Room for a typical namespace file, reused by every {@link readWholeFile} (a larger file gets its own). */
const readBuffer = Buffer.allocUnsafe(16 * 1024);

/**
 * The whole content of the regular file `file` (a copy), or `undefined` when it does not
 * exist; other errors throw like `fs`, and so does anything but a regular file, a symbolic
 * link included (see {@link openIfExists}: a FIFO or a link to a device never blocks or
 * reads without end). Unlike `fs.readFileSync` it does not ask the size first: small files
 * are read in one call.
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

/**
 * Up to `bytes` leading bytes of the regular file `file`, or `undefined` when it does not
 * exist; anything but a regular file throws, as {@link openIfExists} says.
 */
export function readFileHead(file: string, bytes: number): Buffer | undefined {
  const fd = openIfExists(file);
  if (fd === undefined) return undefined;
  try {
    const head = Buffer.alloc(bytes);
    return head.subarray(0, fs.readSync(fd, head, 0, bytes, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates `dir` (and its parents) when missing; returns whether it had to. */
export function ensureDirectory(dir: string): boolean {
  if (fs.existsSync(dir)) return false;
  try {
    makeDirectories(path.resolve(dir));
  } catch (error) {
    throw new StorageError(dir, 'create the data directory', { cause: error });
  }
  return true;
}

/**
 * `mkdir -p`, one level at a time. Node's `mkdirSync(dir, { recursive: true })` loops forever
 * where the parent exists but refuses new entries with `ENOENT` (procfs, sysfs).
 */
function makeDirectories(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fs.statSync(dir).isDirectory()) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir || fs.existsSync(parent)) throw error;
    makeDirectories(parent);
    makeDirectories(dir);
  }
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
 * failure before the rename (a full disk, a file size limit, …) the old content stays, the
 * temporary file is removed and {@link StorageError} is thrown. With `durable` the file and
 * then its directory are fsynced; when the directory cannot be, the StorageError names the
 * directory: the new content is in place then, but may not survive a machine crash.
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
      writeAll(fd, bytes, 0);
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
  if (durable) {
    const dir = path.dirname(file);
    try {
      syncDirectory(dir);
    } catch (error) {
      throw new StorageError(dir, 'fsync the directory', { cause: error });
    }
  }
}

/**
 * Writes `bytes` over `file` at `offset`, without changing its size or inode (fsynced with
 * `durable`). The file must exist. {@link StorageError} when not all of `bytes` could be
 * written: the bytes at `offset` may then be part old, part new.
 */
export function overwriteFileAt(file: string, offset: number, bytes: Buffer, { durable }: { durable: boolean }): void {
  try {
    const fd = fs.openSync(file, 'r+');
    try {
      writeAll(fd, bytes, offset);
      if (durable) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    throw new StorageError(file, 'write', { cause: error });
  }
}

/**
 * Writes all of `bytes` to `fd` at `position`. A write may write less than asked (the
 * disk or a quota filled up, the file size limit was reached): the rest is written by
 * further calls, the first of which reports the error (ENOSPC, EDQUOT, EFBIG); one that
 * writes nothing without an error throws as well.
 */
function writeAll(fd: number, bytes: Buffer, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const written = fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
    if (written <= 0) throw new Error(`wrote ${done} of ${bytes.length} bytes: the last write made no progress`);
    done += written;
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
