/**
 * `sessionlock inspect <id>`: one session, decoded under its read lock, as JSON.
 * @module
 */
import fs from 'node:fs';
import { MIN_KEY_LENGTH } from '../cipher.js';
import { lstatOrUndefined } from '../files.js';
import { DBM_EXTENSION, DBMNamespaceManager, dbmEnvironments } from '../namespace/dbm.js';
import { FILE_EXTENSION, FileNamespaceManager } from '../namespace/file.js';
import { storagePath } from '../namespace/storage-path.js';
import type { KeyWording } from '../namespace/view.js';
import { readSession, SESSION_KEY_WORDING } from '../session-record.js';
import type { SweepType } from '../sweep.js';
import { CliError, COMMON_HELP, type Command, dataDirOf, EXIT, storageTypeOf, UsageError } from './args.js';

const HELP = `Usage: sessionlock inspect <id> --data-dir <dir> [options]

Prints one session as JSON: its id, backend, file, creation and last recorded access
times, its data and its named namespaces. The session is read under its read lock, so
the output is one committed state (a writer holding the lock is waited for).

Encrypted sessions are read with the key in $SESSIONLOCK_ENCRYPT_KEY (the sessions'
encryptKey; several keys, newest first, one per line). A key is never taken from the
command line, where other users could see it.

${COMMON_HELP}

Example:
  $ sessionlock inspect q3v7k2m4t5yxw6r2cz4hj7nb5fa2dkep --data-dir ./sessions
  {
    "id": "q3v7k2m4t5yxw6r2cz4hj7nb5fa2dkep",
    "type": "file",
    "file": "/srv/app/sessions/q3v7k2m4t5yxw6r2cz4hj7nb5fa2dkep.json",
    "created": "2025-06-01T09:02:11.032Z",
    "accessed": "2025-06-01T09:14:03.112Z",
    "data": {
      "user": "ada",
      "cart": [
        3,
        14
      ]
    },
    "namespaces": {
      "prefs": {
        "theme": "dark"
      }
    }
  }`;

const EXTENSIONS: Readonly<Record<SweepType, string>> = { file: FILE_EXTENSION, dbm: DBM_EXTENSION };

/** A session's keys as its Session names them, and where this command takes the encryptKey from. */
const INSPECT_WORDING: KeyWording = {
  ...SESSION_KEY_WORDING,
  giveKey: 'set $SESSIONLOCK_ENCRYPT_KEY to the encryptKey it was stored with',
};

export const inspect: Command = {
  name: 'inspect',
  synopsis: 'inspect <id>',
  summary: 'print one session, decoded, as JSON',
  help: HELP,
  positionals: ['id'],
  async run(invocation) {
    const dataDir = dataDirOf(invocation);
    const id = invocation.positionals[0] as string;
    const type = storageTypeOf(invocation) ?? typeOfSession(dataDir, id);
    if (type === 'dbm' && isEmptyFile(storagePath(dataDir, id, DBM_EXTENSION))) throw notFound(id, dataDir);
    const options = { dataDir, ...encryptKeyOf(invocation.env) };
    const Manager = type === 'file' ? FileNamespaceManager : DBMNamespaceManager;
    const manager = new Manager(id, options).withKeyWording(INSPECT_WORDING);
    try {
      const stored = await manager.withReadLock(() => readSession(manager));
      if (stored.created === undefined && stored.encoded.size === 0) throw notFound(id, dataDir);
      await invocation.out.line(
        JSON.stringify(
          {
            id,
            type,
            file: manager.file,
            created: isoOrNull(stored.created),
            accessed: isoOrNull(stored.accessed),
            data: stored.data,
            namespaces: Object.fromEntries(stored.namespaces),
          },
          null,
          2,
        ),
      );
    } finally {
      await dbmEnvironments.closeAll();
    }
    return EXIT.ok;
  },
};

/** The backend holding session `id`: the one whose file exists. */
function typeOfSession(dataDir: string, id: string): SweepType {
  const found = (['file', 'dbm'] as const).filter((type) => fs.existsSync(storagePath(dataDir, id, EXTENSIONS[type])));
  if (found.length > 1) {
    throw new CliError(`session ${JSON.stringify(id)} exists as a file and a dbm session: choose one with --type`);
  }
  if (found[0] === undefined) throw notFound(id, dataDir);
  return found[0];
}

/**
 * Whether `file` is an empty regular file: a dbm file whose creator never initialised it.
 * It holds no session, and opening it would initialise it (inspect must not write).
 */
function isEmptyFile(file: string): boolean {
  const stat = lstatOrUndefined(file);
  return stat?.isFile() === true && stat.size === 0;
}

function notFound(id: string, dataDir: string): CliError {
  return new CliError(`no session ${JSON.stringify(id)} in ${dataDir}`);
}

function isoOrNull(time: number | undefined): string | null {
  return time === undefined ? null : new Date(time).toISOString();
}

/** `encryptKey` from $SESSIONLOCK_ENCRYPT_KEY (one key per line), or nothing; {@link UsageError} for a short key. */
function encryptKeyOf(env: NodeJS.ProcessEnv): { encryptKey?: string[] } {
  const keys = (env.SESSIONLOCK_ENCRYPT_KEY ?? '').split(/\r?\n/).filter((key) => key.length > 0);
  if (keys.some((key) => key.length < MIN_KEY_LENGTH)) {
    throw new UsageError(`each key in SESSIONLOCK_ENCRYPT_KEY must have ${MIN_KEY_LENGTH}+ characters`);
  }
  return keys.length > 0 ? { encryptKey: keys } : {};
}
