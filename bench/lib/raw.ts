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

function writeTempAndRename(file: string, text: string): void {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(temp, 'wx', 0o600);
  try {
    fs.writeSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
}

/** Write a new temp file, rename it over the session's file (synchronous calls). */
export function fsWriteRename(dir: string): RawOp {
  const files = sessionFiles(dir);
  return {
    name: 'fs write temp + rename',
    op: (i) => writeTempAndRename(files[i % RAW_SESSIONS] as string, payload(i)),
    close: async () => {},
  };
}

/**
 * Write temp, delete the session's file, rename the temp to its name: the rename no longer
 * replaces a file, so ext4 (`auto_da_alloc`) does not flush the new file's data first. Not
 * crash-safe: readers can miss the file, and after a machine crash it may be empty.
 */
export function fsWriteUnlinkRename(dir: string): RawOp {
  const files = sessionFiles(dir);
  return {
    name: 'fs write temp + unlink + rename (unsafe)',
    op: (i) => {
      const file = files[i % RAW_SESSIONS] as string;
      const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      fs.writeFileSync(temp, payload(i), { flag: 'wx', mode: 0o600 });
      fs.unlinkSync(file);
      fs.renameSync(temp, file);
    },
    close: async () => {},
  };
}

/** Read the session's file, then write temp + rename (what a file store's load-change-save needs). */
export function fsReadWriteRename(dir: string): RawOp {
  const files = sessionFiles(dir);
  return {
    name: 'fs read + write temp + rename',
    op: (i) => {
      const file = files[i % RAW_SESSIONS] as string;
      const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { visits: number };
      data.visits++;
      writeTempAndRename(file, JSON.stringify(data));
    },
    close: async () => {},
  };
}

/** Read, then overwrite in place (not atomic: a concurrent reader can see a torn file). */
export function fsReadOverwrite(dir: string): RawOp {
  const files = sessionFiles(dir);
  return {
    name: 'fs read + overwrite in place (unsafe)',
    op: (i) => {
      const file = files[i % RAW_SESSIONS] as string;
      const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { visits: number };
      data.visits++;
      fs.writeFileSync(file, JSON.stringify(data));
    },
    close: async () => {},
  };
}

/** The same with fs.promises, so the thread pool can overlap operations (for 32 in flight). */
export function fsReadWriteRenameAsync(dir: string): RawOp {
  const files = sessionFiles(dir);
  return {
    name: 'fs read + write temp + rename (async)',
    op: async (i) => {
      const file = files[i % RAW_SESSIONS] as string;
      const data = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { visits: number };
      data.visits++;
      const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      await fs.promises.writeFile(temp, JSON.stringify(data), { flag: 'wx', mode: 0o600 });
      await fs.promises.rename(temp, file);
    },
    close: async () => {},
  };
}

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
    name: 'lock file create (O_EXCL) + unlink',
    op: (i) => {
      const lock = path.join(dir, `s${i % RAW_SESSIONS}.json.lock`);
      fs.closeSync(fs.openSync(lock, 'wx', 0o600));
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
