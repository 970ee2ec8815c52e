/**
 * Checking an LMDB file before LMDB maps it. LMDB trusts its files: opening garbage crashes
 * the process, and so does reading a page past the end of a truncated file (SIGBUS) or a
 * damaged page. This module checks the meta pages; `lmdb-tree-check` the pages they lead to.
 * @module
 */
import fs from 'node:fs';
import { StorageError } from '../errors.js';
import { openIfExists } from '../files.js';
import { DB_SIZE, P_META, PAGE_FLAGS, PAGE_HEADER_SIZE, treesProblem } from './lmdb-tree-check.js';

/**
 * The layout of an LMDB file as lmdb 3.5 writes it on a 64-bit platform (mdb.c: MDB_page,
 * MDB_meta, MDB_db; page numbers, transaction ids and sizes are 8 bytes). Pages 0 and 1 are
 * meta pages, a meta page holding an MDB_meta after its header. A commit writes its data
 * pages, then the meta page numbered `txnid & 1`, so the valid meta page with the higher
 * txnid describes the newest commit.
 */
const META_MAGIC = 0xbeefc0de;
const MAGIC_OFFSET = PAGE_HEADER_SIZE; // mm_magic (u32), then mm_version (u32), mm_address, mm_mapsize
const VERSION_OFFSET = MAGIC_OFFSET + 4; // mm_version: its low 16 bits are the file format's version
const DATA_VERSION = 2; // MDB_DATA_VERSION of lmdb 3.5's LMDB
const DBS_OFFSET = MAGIC_OFFSET + 24; // mm_dbs[2]: the free-page tree, then the main tree
const PAGE_SIZE_OFFSET = DBS_OFFSET; // mm_psize is the pad of the free-page tree (u32)
const MAIN_FLAGS_OFFSET = DBS_OFFSET + DB_SIZE + 4; // md_flags of the main tree: 0, as dbm opens files (no duplicate or integer keys)
const LAST_PAGE_OFFSET = DBS_OFFSET + 2 * DB_SIZE; // mm_last_pg: the last page the commit allocated
const TXNID_OFFSET = LAST_PAGE_OFFSET + 8; // mm_txnid: the commit this meta page describes
const META_READ_SIZE = TXNID_OFFSET + 8;

/** How many leading bytes {@link isLmdbFileHead} needs. */
export const LMDB_FILE_HEAD_BYTES = MAGIC_OFFSET + 4;

/**
 * Whether a file that starts with `head` is an LMDB file (its first meta page says so) or
 * empty (as dbm creates it, before LMDB initialises it), however damaged the rest.
 */
export function isLmdbFileHead(head: Buffer): boolean {
  return head.length === 0 || (head.length >= LMDB_FILE_HEAD_BYTES && head.readUInt32LE(MAGIC_OFFSET) === META_MAGIC);
}

/**
 * Why `file` cannot be an LMDB file, or `undefined` if it looks like one (or is empty, which
 * LMDB initialises). LMDB maps files into memory and trusts them: opening garbage crashes
 * the process, and so does reading a page past the end of a truncated file (SIGBUS), so
 * files are checked before they are opened. I/O errors throw {@link StorageError}.
 */
export function lmdbFileProblem(file: string): string | undefined {
  const fd = openForCheck(file);
  if (fd === undefined) return undefined;
  try {
    return checkOpenFile(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** A descriptor of the regular file `file` (not through a symbolic link) for reading, `undefined` when missing; anything else throws {@link StorageError}. */
export function openForCheck(file: string): number | undefined {
  try {
    return openIfExists(file);
  } catch (error) {
    throw new StorageError(file, 'read', { cause: error });
  }
}

/**
 * Like {@link openForCheck}, but a missing file is first created empty with `mode` (LMDB
 * initialises an empty file as a new one). Throws {@link StorageError} if it cannot be created
 * or keeps disappearing.
 */
export function openOrCreateForCheck(file: string, mode: number): number {
  for (let attempt = 0; attempt < 3; attempt++) {
    const fd = openForCheck(file);
    if (fd !== undefined) return fd;
    try {
      fs.closeSync(fs.openSync(file, 'wx', mode));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new StorageError(file, 'create', { cause: error });
    }
  }
  throw new StorageError(file, 'create', { cause: new Error('it was removed as soon as it was created, three times') });
}

/** The size of the lock file lmdb 3.5's LMDB makes (its reader table for 126 readers). */
const LOCK_FILE_BYTES = 8272;
/** The free space below which LMDB is not given an empty data file to initialise. */
const MIN_FREE_BYTES_FOR_NEW_FILE = 64 * 1024;

/**
 * Throws {@link StorageError} unless LMDB can open `lockFile` (an LMDB file's `-lock` file)
 * or create it: something other than a regular file there (a directory, a symbolic link, a
 * FIFO), or one this process may not read and write, makes LMDB's open fail part-way, and
 * lmdb-js 3.5.6 then frees memory twice and the process crashes. A missing lock file is
 * created here, its blocks written: LMDB would size it without writing it and then write it
 * through a memory map, which on a full disk kills the process (SIGBUS) where a write fails.
 */
export function prepareLmdbLockFile(lockFile: string): void {
  try {
    const stat = fs.lstatSync(lockFile, { throwIfNoEntry: false });
    if (stat === undefined) {
      createLockFile(lockFile);
      return;
    }
    if (!stat.isFile()) throw new Error('it is not a regular file');
    // Not opened: closing a descriptor of the file would drop every fcntl lock this process
    // holds on it, LMDB's included, where the file is open in this process already.
    fs.accessSync(lockFile, fs.constants.R_OK | fs.constants.W_OK);
  } catch (error) {
    if (error instanceof StorageError) throw error;
    throw new StorageError(lockFile, 'open', { cause: error });
  }
}

function createLockFile(lockFile: string): void {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(lockFile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new StorageError(lockFile, 'create', { cause: error });
    prepareLmdbLockFile(lockFile);
    return;
  }
  try {
    fs.writeSync(fd, Buffer.alloc(LOCK_FILE_BYTES), 0, LOCK_FILE_BYTES, 0);
  } catch (error) {
    fs.rmSync(lockFile, { force: true });
    throw new StorageError(lockFile, 'create', { cause: error });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Throws {@link StorageError} (ENOSPC) when the empty data file `file`, open as `fd`, sits on
 * a file system with too little space for LMDB to write its first pages: that write fails
 * inside LMDB's open, and a failed open crashes lmdb-js 3.5.6 (see above).
 */
export function checkSpaceForNewFile(fd: number, file: string): void {
  if (fs.fstatSync(fd).size > 0) return;
  const { bavail, bsize } = fs.statfsSync(file);
  if (bavail * bsize >= MIN_FREE_BYTES_FOR_NEW_FILE) return;
  const cause = Object.assign(new Error(`ENOSPC: no space left on device, less than 64 KB free for ${file}`), {
    code: 'ENOSPC',
  });
  throw new StorageError(file, 'create', { cause });
}

/** {@link lmdbFileProblem} of `file` open as `fd`. */
export function checkOpenFile(fd: number, file: string): string | undefined {
  try {
    return lmdbFileProblemAt(fd);
  } catch (error) {
    throw new StorageError(file, 'read', { cause: error });
  }
}

/**
 * {@link lmdbFileProblem} of the open file `fd`. Other processes may be committing to it:
 * a problem counts only if the meta pages read the same before and after looking (a commit
 * rewrites one), else the file is looked at again, and one committed to all along is alive.
 */
function lmdbFileProblemAt(fd: number): string | undefined {
  for (let attempt = 0; attempt < 3; attempt++) {
    const metas = readMetas(fd);
    const problem = problemOf(fd, metas);
    if (!problem || readMetas(fd).equals(metas)) return problem;
  }
  return undefined;
}

/** The start of both meta pages (as much as the file holds), page 1 found by the page size in page 0. */
function readMetas(fd: number): Buffer {
  const first = readAt(fd, 0, META_READ_SIZE);
  const pageSize = first.length === META_READ_SIZE ? first.readUInt32LE(PAGE_SIZE_OFFSET) : 0;
  return Buffer.concat([first, isPageSize(pageSize) ? readAt(fd, pageSize, META_READ_SIZE) : Buffer.alloc(0)]);
}

function problemOf(fd: number, metas: Buffer): string | undefined {
  const size = fs.fstatSync(fd).size; // after the meta pages: the file holds every page they name
  if (size === 0) return undefined;
  if (metas.length < META_READ_SIZE) return 'is too short to be an LMDB file';
  const pageSize = metas.readUInt32LE(PAGE_SIZE_OFFSET);
  if (metas.readUInt32LE(MAGIC_OFFSET) !== META_MAGIC || !isPageSize(pageSize)) return 'is not an LMDB file';
  if (size < 2 * pageSize || metas.length < 2 * META_READ_SIZE) return 'is truncated';
  const second = metas.subarray(META_READ_SIZE);
  for (const meta of [metas, second]) {
    if (
      meta.readUInt32LE(MAGIC_OFFSET) !== META_MAGIC ||
      !(meta.readUInt16LE(PAGE_FLAGS) & P_META) ||
      meta.readUInt16LE(MAIN_FLAGS_OFFSET) !== 0
    ) {
      return 'has a damaged meta page';
    }
    if ((meta.readUInt32LE(VERSION_OFFSET) & 0xffff) !== DATA_VERSION) return 'is of another LMDB file format version';
  }
  const newest = second.readBigUInt64LE(TXNID_OFFSET) > metas.readBigUInt64LE(TXNID_OFFSET) ? second : metas;
  const lastPage = Number(newest.readBigUInt64LE(LAST_PAGE_OFFSET));
  return treesProblem(fd, pageSize, lastPage, newest.subarray(DBS_OFFSET, LAST_PAGE_OFFSET));
}

function isPageSize(size: number): boolean {
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0;
}

/** Up to `length` bytes of `fd` from `position` (fewer at the end of the file). */
function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, position));
}
