/**
 * The file backend: one JSON file per namespace in `dataDir`, replaced atomically (temp
 * file + rename) on each commit, and a proper-lockfile lock beside it for cross-process
 * exclusion. Reads take no lock: a rename is atomic, so a reader sees one commit or the next.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { SessionCorruptError, StorageError } from '../errors.js';
import { removeFile, removeTemporaryFiles, TEMP_DIRECTORY, writeFileAtomically } from '../files.js';
import { FileLock } from '../lock/file-lock.js';
import { checkBoolean, checkString } from '../options.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  HELD_ELSEWHERE,
  NamespaceManager,
  type NamespaceManagerOptions,
} from './namespace-manager.js';
import { storagePath } from './storage-path.js';

/** Options of {@link FileNamespaceManager}. */
export interface FileNamespaceManagerOptions extends NamespaceManagerOptions {
  /** Directory of the namespace files; created when missing. */
  dataDir: string;
  /**
   * `true`: fsync each commit (and its directory) before the lock is released, so a
   * commit survives a power loss. `false`: a commit survives the process being killed
   * but may be lost if the machine crashes, as with most session stores.
   * @default false
   */
  durable?: boolean;
}

/** The extension of namespace files. */
export const FILE_EXTENSION = '.json';
const FORMAT_VERSION = 1;
const MIN_LOCK_STALE = 2000;

/**
 * Keeps each namespace in its own JSON file under `dataDir`. Exclusive across processes on
 * one machine (and on shared file systems with atomic mkdir and rename).
 */
export class FileNamespaceManager extends NamespaceManager {
  /** The path of this namespace's file. */
  readonly file: string;
  readonly #durable: boolean;
  readonly #tempDir: string;
  readonly #lock: FileLock;

  constructor(namespace: string, options: FileNamespaceManagerOptions) {
    super(namespace, options);
    const dataDir = checkString('dataDir', options.dataDir) as string;
    if (this.lockStale < MIN_LOCK_STALE) {
      throw new TypeError(`lockStale must be >= ${MIN_LOCK_STALE} for the file backend, received ${this.lockStale}`);
    }
    this.#durable = checkBoolean('durable', options.durable, false);
    this.file = storagePath(dataDir, namespace, FILE_EXTENSION);
    this.#tempDir = path.join(path.dirname(this.file), TEMP_DIRECTORY);
    this.#lock = new FileLock(this.file, {
      stale: this.lockStale,
      name: namespace,
      log: (line) => this.log(line),
      onTakeover: () => removeTemporaryFiles(this.#tempDir, this.file),
    });
  }

  protected override get lockKey(): string {
    return `file:${this.file}`;
  }

  protected override async readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE> {
    if (!asOwner && this.#lock.heldElsewhere()) return HELD_ELSEWHERE;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw new StorageError(this.file, 'read', { cause: error });
    }
    return decodeRecord(text, this.namespace);
  }

  protected override tryLockStorage(): Promise<boolean> {
    return this.#lock.tryAcquire();
  }

  protected override unlockStorage(): Promise<void> {
    return this.#lock.release();
  }

  protected override async writeCommitted(_changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    if (entries.size === 0) return this.removeCommitted();
    writeFileAtomically(this.file, encodeRecord(this.namespace, entries), {
      tempDir: this.#tempDir,
      durable: this.#durable,
      beforeRename: () => this.#lock.verify(),
    });
  }

  protected override async removeCommitted(): Promise<void> {
    this.#lock.verify();
    removeFile(this.file);
  }
}

function encodeRecord(namespace: string, entries: EncodedEntries): string {
  return JSON.stringify({ sessionlock: FORMAT_VERSION, namespace, entries: Object.fromEntries(entries) });
}

function decodeRecord(text: string, namespace: string): EncodedEntries {
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (error) {
    throw new SessionCorruptError(namespace, 'its file is not valid JSON', { cause: error });
  }
  const { sessionlock, namespace: owner, entries } = (record ?? {}) as Record<string, unknown>;
  if (sessionlock !== FORMAT_VERSION || !entries || typeof entries !== 'object' || Array.isArray(entries)) {
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
