/**
 * Checking an LMDB file before LMDB maps it. LMDB trusts its files: opening garbage crashes
 * the process, and so does reading a page past the end of a truncated file (SIGBUS). This
 * module knows just enough of the file format (lmdb 3.5, 64-bit) to refuse such files.
 * @module
 */
import fs from 'node:fs';
import { StorageError } from '../errors.js';
import { openIfExists } from '../files.js';

/**
 * The layout of an LMDB file as lmdb 3.5 writes it on a 64-bit platform (mdb.c: MDB_page,
 * MDB_meta, MDB_db, MDB_node; page numbers, transaction ids and sizes are 8 bytes). Every
 * page starts with a 24-byte header; pages 0 and 1 are meta pages, a meta page holding an
 * MDB_meta after its header. A commit writes its data pages, then the meta page numbered
 * `txnid & 1`, so the valid meta page with the higher txnid describes the newest commit.
 */
const PAGE_HEADER_SIZE = 24; // MDB_page_header: pgno, txnid, pad (u16), flags (u16), lower (u16), upper (u16)
const PAGE_FLAGS = 18; // u16: P_BRANCH, P_LEAF, P_LEAF2, …
const PAGE_LOWER = 20; // u16: bytes of node offsets (u16 each) after the header
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_META = 0x08;
const P_LEAF2 = 0x20;

const META_MAGIC = 0xbeefc0de;
const MAGIC_OFFSET = PAGE_HEADER_SIZE; // mm_magic (u32), then mm_version (u32), mm_address, mm_mapsize
const VERSION_OFFSET = MAGIC_OFFSET + 4; // mm_version: its low 16 bits are the file format's version
const DATA_VERSION = 2; // MDB_DATA_VERSION of lmdb 3.5's LMDB
const DBS_OFFSET = MAGIC_OFFSET + 24; // mm_dbs[2]: the free-page tree, then the main tree
const DB_SIZE = 48; // MDB_db: pad (u32), flags (u16), depth (u16), 4 counts, root
const DB_ROOT = 40; // md_root: the root page, or P_INVALID (2^64 - 1) for an empty tree
const PAGE_SIZE_OFFSET = DBS_OFFSET; // mm_psize is the pad of the free-page tree (u32)
const LAST_PAGE_OFFSET = DBS_OFFSET + 2 * DB_SIZE; // mm_last_pg: the last page the commit allocated
const TXNID_OFFSET = LAST_PAGE_OFFSET + 8; // mm_txnid: the commit this meta page describes
const META_READ_SIZE = TXNID_OFFSET + 8;

const NODE_HEADER_SIZE = 8; // MDB_node: lo (u16), hi (u16), flags (u16), key size (u16), then key and data
const F_BIGDATA = 0x01; // the value is on overflow pages; the node's data is the first one's number
const F_SUBDATA = 0x02; // the node's data is the MDB_db of a named or duplicate-key tree

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

/**
 * Throws {@link StorageError} unless LMDB can open `lockFile` (an LMDB file's `-lock` file)
 * or create it: something other than a regular file there (a directory, a symbolic link, a
 * FIFO), or one this process may not read and write, makes LMDB's open fail part-way, and
 * lmdb-js 3.5.6 then frees memory twice and the process crashes.
 */
export function checkLmdbLockFile(lockFile: string): void {
  let fd: number | undefined;
  try {
    const stat = fs.lstatSync(lockFile, { throwIfNoEntry: false });
    if (stat === undefined) return;
    if (!stat.isFile()) throw new Error('it is not a regular file');
    fd = fs.openSync(lockFile, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw new StorageError(lockFile, 'open', { cause: error });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
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
    if (meta.readUInt32LE(MAGIC_OFFSET) !== META_MAGIC || !(meta.readUInt16LE(PAGE_FLAGS) & P_META)) {
      return 'has a damaged meta page';
    }
    if ((meta.readUInt32LE(VERSION_OFFSET) & 0xffff) !== DATA_VERSION) return 'is of another LMDB file format version';
  }
  const newest = second.readBigUInt64LE(TXNID_OFFSET) > metas.readBigUInt64LE(TXNID_OFFSET) ? second : metas;
  return reachesPastEnd(fd, newest, pageSize, size) ? 'is truncated' : undefined;
}

/**
 * Whether a page of the commit that `meta` describes lies past the end of the file (`size`
 * bytes). The file normally holds every page up to the commit's last one; when it does not,
 * that may only be pages LMDB allocated and freed within the commit (never written), so the
 * pages the commit's trees reach are looked up. Pages past the last one are not followed:
 * LMDB itself refuses them (MDB_PAGE_NOTFOUND), as it reports pages of the wrong type.
 */
function reachesPastEnd(fd: number, meta: Buffer, pageSize: number, size: number): boolean {
  const lastPage = Number(meta.readBigUInt64LE(LAST_PAGE_OFFSET));
  const pastEnd = (first: number, count = 1) => first <= lastPage && (first + count) * pageSize > size;
  if (!pastEnd(0, lastPage + 1)) return false;
  const pending = [rootOf(meta, DBS_OFFSET), rootOf(meta, DBS_OFFSET + DB_SIZE)];
  const seen = new Set<number>();
  const page = Buffer.alloc(pageSize);
  for (let pageNo = pending.pop(); pageNo !== undefined; pageNo = pending.pop()) {
    if (pageNo > lastPage || seen.has(pageNo)) continue;
    if (pastEnd(pageNo)) return true;
    seen.add(pageNo);
    fs.readSync(fd, page, 0, pageSize, pageNo * pageSize);
    for (const { first, count, tree } of referencesOf(page)) {
      if (tree) pending.push(first);
      else if (pastEnd(first, count)) return true;
    }
  }
  return false;
}

/** The root page of the MDB_db at `offset` of `bytes`. */
function rootOf(bytes: Buffer, offset: number): number {
  return Number(bytes.readBigUInt64LE(offset + DB_ROOT));
}

/**
 * What a branch or leaf page refers to: trees to walk (child pages, named trees) and the
 * overflow pages of large values (the first one and how many); nothing for other pages.
 */
function* referencesOf(page: Buffer): Generator<{ first: number; count: number; tree: boolean }> {
  const flags = page.readUInt16LE(PAGE_FLAGS);
  if (!(flags & (P_BRANCH | P_LEAF)) || flags & P_LEAF2) return;
  const nodes = Math.min(page.readUInt16LE(PAGE_LOWER) >> 1, (page.length - PAGE_HEADER_SIZE) >> 1);
  for (let i = 0; i < nodes; i++) {
    const node = PAGE_HEADER_SIZE + page.readUInt16LE(PAGE_HEADER_SIZE + 2 * i);
    if (node + NODE_HEADER_SIZE > page.length) continue;
    const low = page.readUInt16LE(node) + page.readUInt16LE(node + 2) * 0x10000; // a value's size, or a child's page number
    const nodeFlags = page.readUInt16LE(node + 4); // in a branch page, the top bits of the child's page number
    const data = node + NODE_HEADER_SIZE + page.readUInt16LE(node + 6);
    if (flags & P_BRANCH) {
      yield { first: low + nodeFlags * 0x1_0000_0000, count: 1, tree: true };
    } else if (nodeFlags & F_BIGDATA && data + 8 <= page.length) {
      const count = Math.floor((PAGE_HEADER_SIZE - 1 + low) / page.length) + 1; // OVPAGES of the value's size
      yield { first: Number(page.readBigUInt64LE(data)), count, tree: false };
    } else if (nodeFlags & F_SUBDATA && data + DB_SIZE <= page.length) {
      yield { first: rootOf(page, data), count: 1, tree: true };
    }
  }
}

function isPageSize(size: number): boolean {
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0;
}

/** Up to `length` bytes of `fd` from `position` (fewer at the end of the file). */
function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, position));
}
