/**
 * Checking the trees of an LMDB file before LMDB reads them: LMDB trusts every page, and a
 * damaged one kills the process (an assertion's SIGABRT, or SIGBUS reading through a node
 * offset past the page). Every page a commit's two trees reach is read once and checked
 * against what LMDB will assume of it (mdb.c of lmdb 3.5, 64-bit).
 * @module
 */
import fs from 'node:fs';

/** MDB_page_header: pgno (u64), txnid (u64), pad (u16), flags (u16), lower (u16), upper (u16); or pages (u32) for overflow pages. */
export const PAGE_HEADER_SIZE = 24;
export const PAGE_FLAGS = 18;
const PAGE_LOWER = 20; // bytes of node offsets after the header, each offset counted from the header's end
const PAGE_UPPER = 22; // where the nodes begin, counted from the header's end
const OVERFLOW_PAGES = 20; // u32: how many pages an overflow page's value spans
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
export const P_META = 0x08;
const CONTENT_FLAGS = 0x7f; // P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2 | P_SUBP, and one unused bit

/** MDB_db: pad (u32), flags (u16), depth (u16), branch, leaf and overflow page counts, entries, root (u64 each). */
export const DB_SIZE = 48;
const DB_DEPTH = 6;
export const DB_ROOT = 40;
const EMPTY_TREE = 2n ** 64n - 1n; // P_INVALID
const MAX_DEPTH = 64;

/** MDB_node: lo (u16), hi (u16), flags (u16), key size (u16), then the key and the data. */
const NODE_HEADER_SIZE = 8;
const F_BIGDATA = 0x01; // the value is on overflow pages; the node's data is the first one's number
const F_SUBDATA = 0x02; // the node's data is the MDB_db of a named or duplicate-key tree
const TXNID_SIZE = 8; // the key of every record of the free-page tree

const DAMAGED = 'has a damaged page';
const TRUNCATED = 'is truncated';

interface Walk {
  fd: number;
  pageSize: number;
  /** The file's size in bytes. */
  size: number;
  /** The last page the commit allocated (`mm_last_pg`). */
  lastPage: number;
  seen: Set<number>;
  /** The whole file, read at once when it is small (one read instead of one per page). */
  bytes: Buffer | undefined;
}

/** Files up to this size are read whole. */
const WHOLE_FILE_BYTES = 1024 * 1024;

/**
 * Why the trees of a commit cannot be read safely (`'is truncated'`, `'has a damaged page'`),
 * or `undefined`. `dbs` holds the commit's two MDB_db records (the free-page tree, then the
 * main tree) as its meta page has them. The file normally holds every page up to `lastPage`;
 * it may end earlier when LMDB left pages it allocated and freed within a commit unwritten,
 * so only pages the trees reach count.
 */
export function treesProblem(fd: number, pageSize: number, lastPage: number, dbs: Buffer): string | undefined {
  const size = fs.fstatSync(fd).size;
  const bytes = size <= WHOLE_FILE_BYTES ? readFrom(fd, 0, size) : undefined;
  const walk: Walk = { fd, pageSize, size, lastPage, seen: new Set(), bytes };
  return treeProblem(walk, dbs.subarray(0, DB_SIZE), true) ?? treeProblem(walk, dbs.subarray(DB_SIZE), false);
}

function treeProblem(walk: Walk, db: Buffer, freePages: boolean): string | undefined {
  const root = db.readBigUInt64LE(DB_ROOT);
  const depth = db.readUInt16LE(DB_DEPTH);
  if (root === EMPTY_TREE) return depth === 0 ? undefined : DAMAGED;
  if (depth < 1 || depth > MAX_DEPTH) return DAMAGED;
  const pending: [page: number, level: number][] = [[Number(root), 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [pageNo, level] = next;
    const page = readPage(walk, pageNo, 1);
    if (typeof page === 'string') return page;
    const leaf = level === depth;
    const problem = nodesProblem(walk, page, leaf, freePages, (child) => pending.push([child, level + 1]));
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Checks the nodes of a branch or leaf page: each inside the page, a branch's children
 * queued through `child`, a leaf's overflow pages and named trees checked, and a free-page
 * record keyed and shaped as LMDB's are.
 */
function nodesProblem(
  walk: Walk,
  page: Buffer,
  leaf: boolean,
  freePages: boolean,
  child: (pageNo: number) => void,
): string | undefined {
  const { pageSize } = walk;
  if ((page.readUInt16LE(PAGE_FLAGS) & CONTENT_FLAGS) !== (leaf ? P_LEAF : P_BRANCH)) return DAMAGED;
  const lower = page.readUInt16LE(PAGE_LOWER);
  const upper = page.readUInt16LE(PAGE_UPPER);
  if (lower % 2 !== 0 || lower > upper || PAGE_HEADER_SIZE + upper > pageSize || (!leaf && lower === 0)) {
    return DAMAGED;
  }
  for (let i = 0; i < lower / 2; i++) {
    const offset = page.readUInt16LE(PAGE_HEADER_SIZE + 2 * i);
    const node = PAGE_HEADER_SIZE + offset;
    if (offset < upper || node + NODE_HEADER_SIZE > pageSize) return DAMAGED;
    const low = page.readUInt16LE(node) + page.readUInt16LE(node + 2) * 0x10000; // a value's size, or a child's page number
    const flags = page.readUInt16LE(node + 4); // in a branch page, the top bits of the child's page number
    const keySize = page.readUInt16LE(node + 6);
    const data = node + NODE_HEADER_SIZE + keySize;
    if (data > pageSize || (leaf && freePages && keySize !== TXNID_SIZE)) return DAMAGED;
    if (!leaf) {
      child(low + flags * 0x1_0000_0000);
      continue;
    }
    const problem = valueProblem(walk, page.subarray(data), flags, low, freePages);
    if (problem) return problem;
  }
  return undefined;
}

/** Checks a leaf node's value: `bytes` from its start to the end of the page, `size` its size (or its overflow pages'). */
function valueProblem(walk: Walk, bytes: Buffer, flags: number, size: number, freePages: boolean): string | undefined {
  if (flags & F_BIGDATA) {
    return bytes.length < 8 ? DAMAGED : overflowProblem(walk, Number(bytes.readBigUInt64LE(0)), size);
  }
  if (size > bytes.length) return DAMAGED;
  if (flags & F_SUBDATA) {
    return size === DB_SIZE ? treeProblem(walk, Buffer.from(bytes.subarray(0, DB_SIZE)), false) : DAMAGED;
  }
  return freePages && !isPageList(bytes.subarray(0, size)) ? DAMAGED : undefined;
}

/** Checks the overflow pages holding a value of `bytes` bytes, from `first` on. */
function overflowProblem(walk: Walk, first: number, bytes: number): string | undefined {
  const count = Math.floor((PAGE_HEADER_SIZE - 1 + bytes) / walk.pageSize) + 1; // OVPAGES
  const page = readPage(walk, first, count);
  if (typeof page === 'string') return page;
  const flags = page.readUInt16LE(PAGE_FLAGS) & CONTENT_FLAGS;
  return flags !== P_OVERFLOW || page.readUInt32LE(OVERFLOW_PAGES) < count ? DAMAGED : undefined;
}

/**
 * The first page of `count` from `pageNo` on, read once, after checking that they lie in the
 * commit's pages and the file, and that the page carries its own number; else the problem.
 */
function readPage(walk: Walk, pageNo: number, count: number): Buffer | string {
  const { fd, pageSize, size, lastPage, seen } = walk;
  if (pageNo < 2 || pageNo + count - 1 > lastPage || seen.has(pageNo)) return DAMAGED;
  if ((pageNo + count) * pageSize > size) return TRUNCATED;
  seen.add(pageNo);
  const start = pageNo * pageSize;
  const page = walk.bytes ? walk.bytes.subarray(start, start + pageSize) : readFrom(fd, start, pageSize);
  return page.readBigUInt64LE(0) === BigInt(pageNo) ? page : DAMAGED;
}

/** `length` bytes of `fd` from `position` (zeros past the end of the file). */
function readFrom(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  fs.readSync(fd, buffer, 0, length, position);
  return buffer;
}

/**
 * Whether `bytes` can be a record of the free-page tree: a count of 8-byte entries, then at
 * least that many (lmdb-js's LMDB also stores ranges in them, so entries are not checked).
 */
function isPageList(bytes: Buffer): boolean {
  return bytes.length >= 8 && bytes.readBigUInt64LE(0) <= BigInt(Math.floor(bytes.length / 8) - 1);
}
