/**
 * The file backend: one file per namespace in `dataDir` holding its JSON record in two
 * checksummed slots (see {@link ./file-format}), and a proper-lockfile lock beside it for
 * cross-process exclusion. A commit overwrites the slot without the newest version; reads
 * take no lock: the newest intact slot is one commit or the next, never a mix.
 * @module
 */
import path from 'node:path';
import { SessionCorruptError, StorageError } from '../errors.js';
import {
  overwriteFileAt,
  readWholeFile,
  removeFile,
  removeTemporaryFiles,
  TEMP_DIRECTORY,
  writeFileAtomically,
} from '../files.js';
import { checkBoolean } from '../options.js';
import {
  decodeRecord,
  encodeRecord,
  type NamespaceFile,
  newNamespaceFile,
  nextSlot,
  readNamespaceFile,
  readSettled,
  type SlotLayout,
} from './file-format.js';
import { FileLockedNamespaceManager, type FileLockedNamespaceManagerOptions } from './file-locked.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  HELD_ELSEWHERE,
  NAMESPACE_MANAGER_OPTIONS,
} from './namespace-options.js';

/** Options of {@link FileNamespaceManager}. */
export interface FileNamespaceManagerOptions extends FileLockedNamespaceManagerOptions {
  /**
   * `true`: fsync each commit (and, when it writes a new file, its directory) before the lock is released, so a
   * commit survives a power loss. `false`: a commit survives the process being killed
   * but may be lost if the machine crashes, as with most session stores.
   * @default false
   */
  durable?: boolean | undefined;
}

/** The extension of namespace files. */
export const FILE_EXTENSION = '.json';

/**
 * Keeps each namespace in its own file under `dataDir`. Exclusive across processes on one
 * machine (and on shared file systems with atomic exclusive create and rename).
 */
export class FileNamespaceManager extends FileLockedNamespaceManager {
  static override readonly optionNames: readonly string[] = [...NAMESPACE_MANAGER_OPTIONS, 'durable'];
  readonly #durable: boolean;
  readonly #tempDir: string;
  /**
   * The file's layout as this holder last read or wrote it under the write lock (`'none'`: no
   * slotted file), so a commit need not read the file again; `undefined` when not known.
   */
  #heldLayout: SlotLayout | 'none' | undefined;

  constructor(namespace: string, options: FileNamespaceManagerOptions) {
    super(namespace, options, { backend: 'file', extension: FILE_EXTENSION });
    this.#durable = checkBoolean('durable', options.durable, false);
    this.#tempDir = path.join(path.dirname(this.file), TEMP_DIRECTORY);
  }

  protected override async readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE> {
    if (!asOwner && this.fileLock.heldElsewhere()) return HELD_ELSEWHERE;
    const file = asOwner ? this.#read() : this.#readSettled();
    if (file === HELD_ELSEWHERE) return file;
    if (asOwner) this.#heldLayout = file?.layout ?? 'none';
    return file ? decodeRecord(file.record, this.namespace) : new Map();
  }

  /** Overwrites the older slot in place when the record fits; otherwise writes a new file and renames it into place. */
  protected override async writeCommitted(_changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    if (entries.size === 0) return this.removeCommitted();
    const record = encodeRecord(this.namespace, entries);
    const known = this.#heldLayout ?? this.#read()?.layout ?? 'none';
    const layout = known === 'none' ? undefined : known;
    this.#heldLayout = undefined;
    const slot = layout && nextSlot(layout, record);
    if (slot) {
      this.fileLock.verify();
      overwriteFileAt(this.file, slot.offset, slot.bytes, { durable: this.#durable });
      this.#heldLayout = slot.layout;
      return;
    }
    const file = newNamespaceFile(record, (layout?.sequence ?? 0) + 1);
    writeFileAtomically(this.file, file.bytes, {
      tempDir: this.#tempDir,
      durable: this.#durable,
      beforeRename: () => this.fileLock.verify(),
    });
    this.#heldLayout = file.layout;
  }

  protected override async removeCommitted(): Promise<void> {
    this.fileLock.verify();
    removeFile(this.file);
    this.#heldLayout = 'none';
  }

  protected override unlockStorage(): Promise<void> {
    this.#heldLayout = undefined;
    return super.unlockStorage();
  }

  /** @internal */
  override fileProblem(): string | undefined {
    try {
      const file = this.#read();
      if (file) decodeRecord(file.record, this.namespace);
      return undefined;
    } catch (error) {
      if (error instanceof SessionCorruptError) return error.message;
      throw error;
    }
  }

  protected override cleanUpAfterTakeover(): void {
    removeTemporaryFiles(this.#tempDir, this.file);
  }

  /** {@link #read} without the lock: see {@link readSettled}. */
  #readSettled(): NamespaceFile | undefined | typeof HELD_ELSEWHERE {
    const file = readSettled(
      () => this.#readBytes(),
      () => this.fileLock.heldElsewhere(),
    );
    return file === HELD_ELSEWHERE || file === undefined ? file : this.#intact(file);
  }

  /**
   * The namespace file's newest intact version; `undefined` when there is no file.
   * {@link StorageError} when it cannot be read or is no regular file (a FIFO, a device, a
   * symbolic link: links are not followed, as the sweep and the CLI do not follow them).
   */
  #read(): NamespaceFile | undefined {
    const bytes = this.#readBytes();
    return bytes && this.#intact(readNamespaceFile(bytes));
  }

  #readBytes(): Buffer | undefined {
    try {
      return readWholeFile(this.file);
    } catch (error) {
      throw new StorageError(this.file, 'read', { cause: error });
    }
  }

  /** `file`, or {@link SessionCorruptError} when no slot of it is intact. */
  #intact(file: NamespaceFile | null | undefined): NamespaceFile {
    if (!file) throw new SessionCorruptError(this.namespace, 'its file holds no intact version');
    return file;
  }
}
