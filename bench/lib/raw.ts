/**
 * The machine's limits: the cheapest loop each backend's storage allows for a load-change-save
 * of a ~500-byte session, with nothing around it (no locks, no session logic).
 * @module
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { open, type RootDatabase } from 'lmdb';
import lockfile from 'proper-lockfile';
import { quick } from './harness.js';
import { sessionData } from './systems.js';

/** One raw loop: `op(i)` does one operation on session `i % sessions`. */
export interface RawOp {
  readonly name: string;
  op(i: number): unknown;
  close(): Promise<void>;
}

/** Sessions each raw loop spreads over (fewer with --quick, which only checks that everything runs). */
export const RAW_SESSIONS = quick ? 200 : 1000;
const payload = (i: number) => JSON.stringify({ ...sessionData(i), stamp: randomBytes(4).toString('hex') });

function sessionFiles(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return Array.from({ length: RAW_SESSIONS }, (_, i) => {
    const file = path.join(dir, `s${i}.json`);
    fs.writeFileSync(file, payload(i));
    return file;
  });
}

/** A raw loop over session files in `dir` (created first): `op(file, i)` on file `i % RAW_SESSIONS`. */
function fileLoop(dir: string, name: string, op: (file: string, i: number) => unknown): RawOp {
  const files = sessionFiles(dir);
  return { name, op: (i) => op(files[i % RAW_SESSIONS] as string, i), close: async () => {} };
}

const tempName = (file: string) => `${file}.${randomBytes(6).toString('hex')}.tmp`;

/** Writes a new temp file and renames it to `file`; with `unlinkFirst`, deletes `file` first, so the rename replaces nothing. */
function writeTempAndRename(file: string, text: string, { unlinkFirst = false } = {}): void {
  const temp = tempName(file);
  fs.writeFileSync(temp, text, { flag: 'wx', mode: 0o600 });
  if (unlinkFirst) fs.unlinkSync(file);
  fs.renameSync(temp, file);
}

/** Reads the session's file and returns it with its counter incremented. */
function readIncrement(file: string): string {
  const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { visits: number };
  data.visits++;
  return JSON.stringify(data);
}

/** Write a new temp file, rename it over the session's file (synchronous calls). */
export const fsWriteRename = (dir: string): RawOp =>
  fileLoop(dir, 'fs write temp + rename', (file, i) => writeTempAndRename(file, payload(i)));

/**
 * Write temp, delete the session's file, rename the temp to its name: the rename no longer
 * replaces a file, so ext4 (`auto_da_alloc`) does not flush the new file's data first. Not
 * crash-safe: readers can miss the file, and after a machine crash it may be empty.
 */
export const fsWriteUnlinkRename = (dir: string): RawOp =>
  fileLoop(dir, 'fs write temp + unlink + rename (unsafe)', (file, i) =>
    writeTempAndRename(file, payload(i), { unlinkFirst: true }),
  );

/** Read the session's file, then write temp + rename (what a file store's load-change-save needs). */
export const fsReadWriteRename = (dir: string): RawOp =>
  fileLoop(dir, 'fs read + write temp + rename', (file) => writeTempAndRename(file, readIncrement(file)));

/** Read, then overwrite in place (not atomic: a concurrent reader can see a torn file). */
export const fsReadOverwrite = (dir: string): RawOp =>
  fileLoop(dir, 'fs read + overwrite in place (unsafe)', (file) => fs.writeFileSync(file, readIncrement(file)));

/** The same with fs.promises, so the thread pool can overlap operations (for 32 in flight). */
export const fsReadWriteRenameAsync = (dir: string): RawOp =>
  fileLoop(dir, 'fs read + write temp + rename (async)', async (file) => {
    const data = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { visits: number };
    data.visits++;
    const temp = tempName(file);
    await fs.promises.writeFile(temp, JSON.stringify(data), { flag: 'wx', mode: 0o600 });
    await fs.promises.rename(temp, file);
  });

function openLmdb(dir: string, noSync: boolean): RootDatabase<string, string> {
  fs.mkdirSync(dir, { recursive: true });
  const db = open<string, string>({
    path: path.join(dir, `raw${noSync ? '-nosync' : ''}.mdb`),
    noSubdir: true,
    encoding: 'string',
    mapSize: 256 * 1024 * 1024,
    ...(noSync ? { noSync: true } : {}),
  });
  db.transactionSync(() => {
    for (let i = 0; i < RAW_SESSIONS; i++) db.putSync(`s${i}`, payload(i));
  });
  return db;
}

/** LMDB get + putSync: one synced write transaction per save (what the dbm backend commits). */
export function lmdbGetPutSync(dir: string): RawOp {
  const db = openLmdb(dir, false);
  return {
    name: 'LMDB get + putSync',
    op: (i) => {
      const key = `s${i % RAW_SESSIONS}`;
      const data = JSON.parse(db.get(key) as string) as { visits: number };
      data.visits++;
      db.putSync(key, JSON.stringify(data));
    },
    close: () => db.close(),
  };
}

/** LMDB get + async put: lmdb-js batches concurrent puts into one synced transaction. */
export function lmdbGetPutAsync(dir: string, noSync = false): RawOp {
  const db = openLmdb(dir, noSync);
  return {
    name: noSync ? 'LMDB get + put (batched, no sync)' : 'LMDB get + put (batched)',
    op: async (i) => {
      const key = `s${i % RAW_SESSIONS}`;
      const data = JSON.parse(db.get(key) as string) as { visits: number };
      data.visits++;
      await db.put(key, JSON.stringify(data));
    },
    close: () => db.close(),
  };
}

/** Redis GET + SET with ioredis: two round trips. */
export async function redisGetSet(url: string): Promise<RawOp> {
  const client = new Redis(url, { lazyConnect: true });
  await client.connect();
  const pipeline = client.pipeline();
  for (let i = 0; i < RAW_SESSIONS; i++) pipeline.set(`raw:s${i}`, payload(i));
  await pipeline.exec();
  return {
    name: 'Redis GET + SET (ioredis)',
    op: async (i) => {
      const key = `raw:s${i % RAW_SESSIONS}`;
      const data = JSON.parse((await client.get(key)) as string) as { visits: number };
      data.visits++;
      await client.set(key, JSON.stringify(data));
    },
    close: async () => void (await client.quit()),
  };
}

/** An empty lock file created with O_EXCL, then deleted: the lock entry FileLock makes instead of a directory. */
export function exclusiveLockFile(dir: string): RawOp {
  fs.mkdirSync(dir, { recursive: true });
  return {
    name: 'lock file create (O_EXCL) + lease record + unlink',
    op: (i) => {
      const lock = path.join(dir, `s${i % RAW_SESSIONS}.json.lock`);
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, '10000');
      fs.closeSync(fd);
      fs.unlinkSync(lock);
    },
    close: async () => {},
  };
}

/** proper-lockfile lock + release of one of 1000 paths, on its own `mkdir` lock directories. */
export function properLockfile(dir: string): RawOp {
  fs.mkdirSync(dir, { recursive: true });
  return {
    name: 'proper-lockfile lock + release',
    op: async (i) => {
      const release = await lockfile.lock(path.join(dir, `s${i % RAW_SESSIONS}.json`), {
        realpath: false,
        retries: 0,
        stale: 10_000,
        update: 2500,
        onCompromised: () => {},
      });
      await release();
    },
    close: async () => {},
  };
}
