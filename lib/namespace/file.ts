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
import { checkBoolean } from '../options.js';
import { FileLockedNamespaceManager, type FileLockedNamespaceManagerOptions } from './file-locked.js';
import { type EncodedChanges, type EncodedEntries, HELD_ELSEWHERE } from './namespace-manager.js';

/** Options of {@link FileNamespaceManager}. */
export interface FileNamespaceManagerOptions extends FileLockedNamespaceManagerOptions {
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

/**
 * Keeps each namespace in its own JSON file under `dataDir`. Exclusive across processes on
 * one machine (and on shared file systems with atomic exclusive create and rename).
 */
export class FileNamespaceManager extends FileLockedNamespaceManager {
  readonly #durable: boolean;
  readonly #tempDir: string;

  constructor(namespace: string, options: FileNamespaceManagerOptions) {
    super(namespace, options, { backend: 'file', extension: FILE_EXTENSION });
    this.#durable = checkBoolean('durable', options.durable, false);
    this.#tempDir = path.join(path.dirname(this.file), TEMP_DIRECTORY);
  }

  protected override async readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE> {
    if (!asOwner && this.fileLock.heldElsewhere()) return HELD_ELSEWHERE;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw new StorageError(this.file, 'read', { cause: error });
    }
    return decodeRecord(text, this.namespace);
  }

  protected override async writeCommitted(_changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    if (entries.size === 0) return this.removeCommitted();
    writeFileAtomically(this.file, encodeRecord(this.namespace, entries), {
      tempDir: this.#tempDir,
      durable: this.#durable,
      beforeRename: () => this.fileLock.verify(),
    });
  }

  protected override async removeCommitted(): Promise<void> {
    this.fileLock.verify();
    removeFile(this.file);
  }

  protected override cleanUpAfterTakeover(): void {
    removeTemporaryFiles(this.#tempDir, this.file);
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
