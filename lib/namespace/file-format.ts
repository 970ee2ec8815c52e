/**
 * The file backend's file format. A namespace file is two slots of equal size; each holds one
 * version of the namespace's record behind a header line:
 *
 *     sessionlock <sequence> <length> <crc32>\n{"sessionlock":1,"namespace":"…","entries":{…}}
 *
 * (`length` bytes of UTF-8 after the header; the CRC-32, in hex, covers the sequence number,
 * the length and those bytes; the rest of the slot is ignored). A commit overwrites the slot that does not hold the newest version, in place, with
 * the next sequence number. The newest version is never touched while that is written, so a
 * reader that races the write, or a writer killed in the middle of it, finds one intact slot:
 * readers take the valid slot with the highest sequence number. Overwriting allocates nothing,
 * where writing a new file and renaming it over the old one costs the file system a new inode
 * and its blocks. A record that outgrows its slot (or shrinks far below it)
 * goes to a new file with fitting slots, written beside it and renamed into place.
 *
 * A file that is one bare record (version 1, as earlier versions wrote) is read as it is; its
 * next commit rewrites it in this format.
 * @module
 */
import { crc32 } from 'node:zlib';
import { SessionCorruptError } from '../errors.js';
import { type EncodedEntries, HELD_ELSEWHERE } from './namespace-options.js';

const RECORD_VERSION = 1;
const HEADER = /^sessionlock (\d{1,15}) (\d{1,15}) ([0-9a-f]{8})\n$/;
const MAX_HEADER_BYTES = 64;
const MIN_SLOT_BYTES = 1024;
const OPEN_BRACE = 0x7b;
const NEWLINE = 0x0a;
/** What a slot that never held a version is filled with. */
const BLANK = 0x20;

/** Where the next version of a slotted file goes. */
export interface SlotLayout {
  /** Bytes per slot (half the file). */
  slotBytes: number;
  /** The slot (0 or 1) that does not hold the newest version: the next commit overwrites it. */
  older: 0 | 1;
  /** The newest version's sequence number. */
  sequence: number;
}

/** A namespace file as read: its newest intact record, and its slots (none for a version-1 file). */
export interface NamespaceFile {
  record: string;
  layout: SlotLayout | undefined;
  /**
   * Whether the other slot is neither intact nor blank: a commit was writing it while it was
   * read, or a writer was killed while writing it.
   */
  torn: boolean;
}

const SLOTTED_HEAD = Buffer.from('sessionlock ');
const BARE_RECORD_HEAD = Buffer.from(`{"sessionlock":${RECORD_VERSION},`);

/** How many leading bytes {@link isNamespaceFileHead} needs. */
export const NAMESPACE_FILE_HEAD_BYTES = BARE_RECORD_HEAD.length;

/**
 * Whether a file that starts with `head` was written by the file backend (either format),
 * however damaged the rest: the sweep removes such a file when it is corrupt, and leaves any
 * other file alone.
 */
export function isNamespaceFileHead(head: Buffer): boolean {
  return (
    head.subarray(0, SLOTTED_HEAD.length).equals(SLOTTED_HEAD) ||
    head.subarray(0, BARE_RECORD_HEAD.length).equals(BARE_RECORD_HEAD)
  );
}

/** The record of `entries`, as every slot (and a version-1 file) holds it. */
export function encodeRecord(namespace: string, entries: EncodedEntries): string {
  return JSON.stringify({ sessionlock: RECORD_VERSION, namespace, entries: Object.fromEntries(entries) });
}

/** The entries of a record; {@link SessionCorruptError} unless it is a well-formed record of `namespace`. */
export function decodeRecord(text: string, namespace: string): EncodedEntries {
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (error) {
    throw new SessionCorruptError(namespace, 'its file is not valid JSON', { cause: error });
  }
  const { sessionlock, namespace: owner, entries } = (record ?? {}) as Record<string, unknown>;
  if (sessionlock !== RECORD_VERSION || !entries || typeof entries !== 'object' || Array.isArray(entries)) {
    throw new SessionCorruptError(namespace, 'its file is not a sessionlock namespace file');
  }
  if (owner !== namespace) throw new SessionCorruptError(namespace, 'its file belongs to another namespace');
  const decoded = new Map<string, string>();
  for (const [key, raw] of Object.entries(entries)) {
    if (typeof raw !== 'string')
      throw new SessionCorruptError(namespace, `the entry ${JSON.stringify(key)} is malformed`);
    decoded.set(key, raw);
  }
  return decoded;
}

/** The newest intact record in `file` (a file's bytes); `undefined` when no slot is intact. */
export function readNamespaceFile(file: Buffer): NamespaceFile | undefined {
  if (file[0] === OPEN_BRACE) return { record: file.toString('utf8'), layout: undefined, torn: false };
  if (file.length < 2 * MIN_SLOT_BYTES || file.length % 2 !== 0) return undefined;
  const slotBytes = file.length / 2;
  let newest: { slot: 0 | 1; sequence: number; record: Buffer } | undefined;
  let torn = false;
  for (const slot of [0, 1] as const) {
    const bytes = file.subarray(slot * slotBytes, (slot + 1) * slotBytes);
    const found = readSlot(bytes);
    if (!found) torn ||= bytes[0] !== BLANK;
    else if (!newest || found.sequence > newest.sequence) newest = { slot, ...found };
  }
  if (!newest) return undefined;
  return {
    record: newest.record.toString('utf8'),
    layout: { slotBytes, older: newest.slot === 0 ? 1 : 0, sequence: newest.sequence },
    torn,
  };
}

/** How many times {@link readSettled} reads a file that looks mid-commit before it waits as for a writer. */
const SETTLING_READS = 4;

/**
 * Reads a slotted file without its lock (`read` returns its bytes, `undefined` when there is
 * none): the file as {@link readNamespaceFile} finds it, `null` when no slot is intact, or
 * {@link HELD_ELSEWHERE} to wait for a writer. A read takes the slots one after the other, so
 * one that spans two commits (the first rewriting the slot read first, the second half done
 * with the other) would find the version from before both. So a file with a torn slot (or no
 * intact one) is read again until two reads agree: a torn slot that a killed writer left, or a
 * damaged file, stays as it is. While they differ and `heldElsewhere()`, or after
 * {@link SETTLING_READS} reads, it is {@link HELD_ELSEWHERE}.
 */
export function readSettled(
  read: () => Buffer | undefined,
  heldElsewhere: () => boolean,
): NamespaceFile | null | undefined | typeof HELD_ELSEWHERE {
  let previous: Buffer | undefined;
  for (let attempt = 0; attempt < SETTLING_READS; attempt++) {
    const bytes = read();
    if (!bytes) return undefined;
    const file = readNamespaceFile(bytes);
    if ((file && !file.torn) || previous?.equals(bytes)) return file ?? null;
    if (heldElsewhere()) return HELD_ELSEWHERE;
    previous = bytes;
  }
  return HELD_ELSEWHERE;
}

/** A new file holding `record` as version `sequence`, in slots with room for it to double, and its layout. */
export function newNamespaceFile(record: string, sequence: number): { bytes: Buffer; layout: SlotLayout } {
  const slot = encodeSlot(record, sequence);
  const slotBytes = slotBytesFor(slot.length);
  const bytes = Buffer.alloc(2 * slotBytes, BLANK);
  slot.copy(bytes, 0);
  bytes[slotBytes - 1] = NEWLINE;
  bytes[2 * slotBytes - 1] = NEWLINE;
  return { bytes, layout: { slotBytes, older: 1, sequence } };
}

/**
 * The bytes to write over the older slot of a file laid out as `layout` to make `record` its
 * newest version, where, and the layout after that write; `undefined` when the record does
 * not fit its slots (write a {@link newNamespaceFile} instead).
 */
export function nextSlot(
  layout: SlotLayout,
  record: string,
): { offset: number; bytes: Buffer; layout: SlotLayout } | undefined {
  const sequence = layout.sequence + 1;
  const bytes = encodeSlot(record, sequence);
  if (bytes.length > layout.slotBytes || layout.slotBytes > 4 * slotBytesFor(bytes.length)) return undefined;
  const after: SlotLayout = { slotBytes: layout.slotBytes, older: layout.older === 0 ? 1 : 0, sequence };
  return { offset: layout.older * layout.slotBytes, bytes, layout: after };
}

function encodeSlot(record: string, sequence: number): Buffer {
  const body = Buffer.from(record, 'utf8');
  const checksum = checksumOf(sequence, body).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`sessionlock ${sequence} ${body.length} ${checksum}\n`, 'latin1'), body]);
}

function readSlot(slot: Buffer): { sequence: number; record: Buffer } | undefined {
  const end = slot.subarray(0, MAX_HEADER_BYTES).indexOf(NEWLINE);
  if (end < 0) return undefined;
  const header = HEADER.exec(slot.toString('latin1', 0, end + 1));
  if (!header) return undefined;
  const length = Number(header[2]);
  if (end + 1 + length > slot.length) return undefined;
  const record = slot.subarray(end + 1, end + 1 + length);
  const sequence = Number(header[1]);
  if (checksumOf(sequence, record) !== Number.parseInt(header[3] as string, 16)) return undefined;
  return { sequence, record };
}

/** CRC-32 over the sequence number and the record, so a header half overwritten by the next version does not pass. */
function checksumOf(sequence: number, record: Buffer): number {
  return crc32(record, crc32(`${sequence} ${record.length}\n`));
}

/** Slots twice the size of what they hold, in powers of two. */
function slotBytesFor(bytes: number): number {
  let size = MIN_SLOT_BYTES;
  while (size < 2 * bytes) size *= 2;
  return size;
}
