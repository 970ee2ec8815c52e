/**
 * Scenario `dbm-costs`: what the dbm backend's operations cost on this machine, with the LMDB
 * options it uses (one file per namespace, synced commits): a commit on an open file, opening
 * and closing a file, the first commit on a freshly opened file, lmdb-js's asynchronous
 * transactions as the alternative, and the memory an open file holds. With `--session-cycle`
 * (about a minute more, so not part of `npm run bench`), also the `cycle` scenario's Session
 * cycle with the default cache of open files, the same with glibc's mmap threshold pinned,
 * and a cache that holds every session's file. The README's explanation of the dbm results
 * quotes it.
 *
 *   tsx bench/dbm-costs.ts [--quick] [--session-cycle]
 * @module
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, type RootDatabase } from 'lmdb';
import { DBMNamespaceManager } from 'sessionlock';
import { dbmEnvironments } from '../lib/namespace/dbm.js';
import { PINNED_MMAP_THRESHOLD } from '../lib/namespace/glibc-malloc.js';
import { lmdbOpenOptions } from '../lib/namespace/lmdb-environments.js';
import { flushDisk, formatNumber, quick, Results, runScenario, throughput } from './lib/harness.js';
import { makeScratchDir, sessionlockSystem } from './lib/systems.js';

const ROUNDS = quick ? 1 : 3;
const FILES = quick ? 50 : 100;
const OPS = quick ? 300 : 1500;
const MEMORY_FILES = quick ? 50 : 200;
const SESSION_CYCLE = process.argv.includes('--session-cycle');
/** As many sessions as the `cycle` scenario stores. */
const CYCLE_SESSIONS = quick ? 200 : 1000;
const CYCLE_DURATION = quick ? 150 : 1000;
const VALUE = 'v'.repeat(500);

type Db = RootDatabase<string, string>;

const openDb = (file: string): Db => open<string, string>(lmdbOpenOptions(file));

function commitSync(db: Db): void {
  db.transactionSync(() => {
    db.get('a');
    db.putSync('a', VALUE);
  });
}

function commitAsync(db: Db): Promise<unknown> {
  return db.transaction(() => {
    db.get('a');
    db.putSync('a', VALUE);
  });
}

/** Microseconds per call of `op` over `count` calls, one at a time. */
async function microseconds(count: number, op: (i: number) => unknown): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await op(i);
  return ((performance.now() - started) * 1000) / count;
}

/** Runs `bench/lib/<child>` in a new Node process (with `nodeFlags` and extra `env`) and parses the JSON it prints. */
function runChild<T>(
  child: string,
  args: string[],
  { nodeFlags = [], env = {} }: { nodeFlags?: string[]; env?: Record<string, string> } = {},
): T {
  const script = fileURLToPath(new URL(`./lib/${child}`, import.meta.url));
  const output = execFileSync(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return JSON.parse(output) as T;
}

/** What one open + read + close leaves to collect, measured in a child whose young generation never fills meanwhile. */
function garbagePerOpen(dir: string): { heapKB: number; arrayBuffersKB: number } {
  return runChild('lmdb-allocation.ts', [dir], { nodeFlags: ['--max-semi-space-size=256'] });
}

/** glibc's mmap threshold pinned, so LMDB's 2 MB lists never come from its heap. */
const PINNED_MMAP_ENV = { MALLOC_MMAP_THRESHOLD_: String(PINNED_MMAP_THRESHOLD) };

/** The ways an open file's memory is measured, each in its own child process: files used, env. */
const MEMORY_CASES = [
  { name: 'an open file, nothing evicted yet', files: MEMORY_FILES, env: {} },
  { name: 'an open file, while evicting', files: 3 * MEMORY_FILES, env: {} },
  {
    name: `the same, MALLOC_MMAP_THRESHOLD_=${PINNED_MMAP_THRESHOLD}`,
    files: 3 * MEMORY_FILES,
    env: PINNED_MMAP_ENV,
  },
] as const;

/** KB of anonymous memory per open file (Linux only), measured in a child (see bench/lib/lmdb-memory.ts). */
function memoryPerOpenFile(dir: string, files: number, env: Record<string, string>): number | null {
  const args = [dir, String(MEMORY_FILES), String(files)];
  return runChild<{ kbPerOpenFile: number | null }>('lmdb-memory.ts', args, { env }).kbPerOpenFile;
}

interface CycleCase {
  name: string;
  capacity: number;
  env: Record<string, string>;
}

/** The Session cycle's cases: the default cache, the same with glibc's mmap threshold pinned, and a cache with room for every session. */
function cycleCases(): CycleCase[] {
  const defaultCapacity = dbmEnvironments.capacity;
  const roomy = 2 * Math.max(CYCLE_SESSIONS, defaultCapacity);
  const defaultCache = `Session cycle, maxOpenFiles ${formatNumber(defaultCapacity)} (default)`;
  return [
    { name: defaultCache, capacity: defaultCapacity, env: {} },
    {
      name: `${defaultCache}, MALLOC_MMAP_THRESHOLD_=${PINNED_MMAP_THRESHOLD}`,
      capacity: defaultCapacity,
      env: PINNED_MMAP_ENV,
    },
    { name: `Session cycle, maxOpenFiles ${formatNumber(roomy)} (every file stays open)`, capacity: roomy, env: {} },
  ];
}

/** Stores the cycle's sessions through the dbm backend; returns the file listing their ids. */
async function seedCycleSessions(dir: string): Promise<string> {
  const ids = await sessionlockSystem('dbm', { dir }).seed(CYCLE_SESSIONS);
  await DBMNamespaceManager.closeFiles();
  const idsFile = path.join(dir, 'ids.json');
  fs.writeFileSync(idsFile, JSON.stringify(ids));
  return idsFile;
}

/** Session cycles per second, one at a time, in a child run as `test` says (see bench/lib/dbm-cache-cycle.ts). */
function cyclesPerSecond(dir: string, idsFile: string, test: CycleCase): number {
  flushDisk();
  const args = [dir, idsFile, String(test.capacity), String(CYCLE_DURATION)];
  return runChild<{ perSecond: number }>('dbm-cache-cycle.ts', args, { env: test.env }).perSecond;
}

/** Runs every Session cycle case ROUNDS times, in a new order each round; returns the cases. */
async function measureSessionCycle(dir: string, record: (name: string, value: number) => void): Promise<CycleCase[]> {
  const cycleDir = fs.mkdtempSync(path.join(dir, 'cycle-'));
  const idsFile = await seedCycleSessions(cycleDir);
  const cases = cycleCases();
  for (let round = 0; round < ROUNDS; round++) {
    const order = cases.map((_, i) => cases[(i + round) % cases.length] as CycleCase);
    for (const test of order) record(test.name, cyclesPerSecond(cycleDir, idsFile, test));
  }
  return cases;
}

async function main(): Promise<void> {
  const results = new Results('dbm-costs');
  const dir = makeScratchDir('dbm-costs');
  const files = Array.from({ length: FILES }, (_, i) => path.join(dir, `s${i}.mdb`));
  for (const file of files) {
    const db = openDb(file);
    commitSync(db);
    await db.close();
  }
  const rows: Record<string, number[]> = {};
  const record = (name: string, value: number) => {
    rows[name] ??= [];
    rows[name].push(value);
  };
  const cycle = async (i: number, work: (db: Db) => unknown) => {
    const db = openDb(files[i % FILES] as string);
    await work(db);
    await db.close();
  };

  for (let round = 0; round < ROUNDS; round++) {
    const dbs = files.map(openDb);
    const pick = (i: number) => dbs[(i * 7919) % FILES] as Db;
    record('synced commit, file open (sync)', await microseconds(OPS, (i) => commitSync(pick(i))));
    record('synced commit, file open (async transaction)', await microseconds(OPS, (i) => commitAsync(pick(i))));
    const parallel = await throughput((i) => commitAsync(pick(i)), { duration: quick ? 150 : 700, concurrency: 32 });
    record('async, 32 in flight: commits/s', parallel.perSecond);
    const sequential = await throughput((i) => commitSync(pick(i)), { duration: quick ? 150 : 700, concurrency: 32 });
    record('sync, 32 in flight: commits/s', sequential.perSecond);
    await Promise.all(dbs.map((db) => db.close()));
    record('open + close', await microseconds(OPS / 5, (i) => cycle(i, () => {})));
    record('open + first commit (sync) + close', await microseconds(OPS / 5, (i) => cycle(i, commitSync)));
    record(
      'open + first commit (async transaction) + close',
      await microseconds(OPS / 5, (i) => cycle(i, commitAsync)),
    );
  }

  const latencies = Object.keys(rows).filter((name) => !name.includes('commits/s') && !name.startsWith('garbage'));
  for (const name of latencies) results.add(name, 'µs per operation', 'µs', rows[name] as number[]);
  for (const name of Object.keys(rows).filter((n) => n.includes('commits/s')))
    results.add(name.replace(': commits/s', ''), 'commits/s', 'ops/s', rows[name] as number[]);

  for (const { name, files, env } of MEMORY_CASES) {
    const memoryDir = fs.mkdtempSync(path.join(dir, 'memory-'));
    const kb = memoryPerOpenFile(memoryDir, files, env);
    if (kb !== null) results.add(name, 'KB of anonymous memory', 'KB', [kb]);
    fs.rmSync(memoryDir, { recursive: true, force: true });
  }
  const cycleCases = SESSION_CYCLE ? await measureSessionCycle(dir, record) : [];
  for (const { name } of cycleCases) results.add(name, 'cycles/s', 'cycles/s', rows[name] as number[]);

  for (let round = 0; round < ROUNDS; round++) {
    const garbage = garbagePerOpen(dir);
    record('garbage: JS heap', garbage.heapKB);
    record('garbage: buffers', garbage.arrayBuffersKB);
  }
  results.add('open + read + close', 'KB of JS heap to collect', 'KB', rows['garbage: JS heap'] as number[]);
  results.add('open + read + close', 'KB of buffers to collect', 'KB', rows['garbage: buffers'] as number[]);

  results.table(
    `dbm costs: one ~500-byte value per commit, ${FILES} files (median of ${ROUNDS} rounds, min–max)`,
    [...latencies, 'async, 32 in flight', 'sync, 32 in flight', ...MEMORY_CASES.map((c) => c.name)],
    [
      { label: 'µs per operation, 1 at a time', metric: 'µs per operation' },
      { label: 'commits/s, 32 in flight', metric: 'commits/s' },
      { label: 'KB of anonymous memory', metric: 'KB of anonymous memory' },
    ],
  );
  results.table(
    `What a file opened, read and closed again (a cache miss) leaves for the garbage collector, KB (median of ${ROUNDS} rounds)`,
    ['open + read + close'],
    [
      { label: 'JS heap', metric: 'KB of JS heap to collect' },
      { label: 'buffers', metric: 'KB of buffers to collect' },
    ],
  );
  if (cycleCases.length > 0) {
    results.table(
      `The cycle scenario's load → change one key → save through the Session API, ${formatNumber(CYCLE_SESSIONS)} dbm sessions, one at a time, in a child process per case (median of ${ROUNDS} rounds, min–max)`,
      cycleCases.map((c) => c.name),
      [{ label: 'cycles/s', metric: 'cycles/s' }],
    );
    results.note(
      `Session cycle (--session-cycle): the sessions are stored first; before each child the disk's pending writes are flushed (sync, untimed); the child cycles every session once untimed (so its cache holds as many files as it will), then measures ${CYCLE_DURATION} ms of cycles on random sessions; the cases rotate in order from round to round. MALLOC_MMAP_THRESHOLD_ pins glibc’s mmap threshold in that child (see Memory).`,
    );
  }
  results.note(
    `Options of the dbm backend (lmdbOpenOptions: synced commits, no overlapping sync). A commit is a write transaction that reads and writes one key. "sync" is transactionSync, as the backend commits; "async transaction" is lmdb-js transaction(), which commits on a worker thread. Memory: /proc/self/smaps_rollup before and after using files one after another through the backend’s cache with room for ${MEMORY_FILES}, in a child process, divided by the ${MEMORY_FILES} left open: ${MEMORY_FILES} files (nothing evicted), and ${3 * MEMORY_FILES} files (the cache evicts, as a server with more sessions than open files does; each LMDB file allocates a 2 MB dirty-page list; once glibc has seen such a block freed, it serves the next ones from its heap and zeroes them, so they become resident; MALLOC_MMAP_THRESHOLD_ pins glibc’s threshold and keeps them out of the heap). Garbage: process.memoryUsage() around 60 open + read + close cycles in a child run with --max-semi-space-size=256, so no collection runs in between.`,
  );
  results.write();
  fs.rmSync(dir, { recursive: true, force: true });
}

runScenario(import.meta, main);
