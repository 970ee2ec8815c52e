/**
 * Scenario `scale`: 1k / 10k / 100k stored sessions per backend (file, dbm, redis): load
 * latency p50/p99, storage per session (disk blocks for file and dbm, LMDB lock files
 * included; memory for redis), and the time `sweep()` takes to remove 100k expired sessions.
 * Sessions are created fast, by copying what sessionlock wrote for one session (the dbm
 * files, the file backend's JSON with the namespace changed, the Redis hash).
 *
 *   tsx bench/scale.ts [--quick]     (--quick: 1k only)
 * @module
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { DBMNamespaceManager, RedisNamespaceManager, Session, type SessionOptions, sweep } from 'sessionlock';
// Seeding only: the file format's own encoder, so 100k copies of one session are valid files.
import { newNamespaceFile, readNamespaceFile } from '../lib/namespace/file-format.js';
import {
  type Contender,
  fail,
  flushDisk,
  formatNumber,
  formatRatio,
  interleave,
  percentile,
  progress,
  quick,
  Results,
  runScenario,
} from './lib/harness.js';
import { benchRedis, redisAvailable } from './lib/redis.js';
import { COOKIE_KEY, makeScratchDir, randomPicks, SESSIONLOCK_NAME, sessionData } from './lib/systems.js';

const SIZES = quick ? [1000] : [1000, 10_000, 100_000];
const LOADS = quick ? 300 : 1000;
/** The warm-up's loads: enough to fill dbm's cache of 512 open files. */
const WARMUP_LOADS = quick ? 100 : 600;
const ROUNDS = quick ? 2 : 3;
/** The sets the sweep removes (after the loads): the largest. */
const SWEEP_SIZE = SIZES[SIZES.length - 1] as number;

type Kind = 'file' | 'dbm' | 'redis';

interface Dataset {
  kind: Kind;
  size: number;
  ids: string[];
  options: SessionOptions;
  dataDir?: string;
}

const label = (size: number) => `${size / 1000}k`;

/** Bytes of disk blocks under `dir` (files, LMDB lock files, subdirectories and the directories themselves). */
function diskBytes(dir: string): { blocks: number; files: number } {
  let blocks = fs.statSync(dir).blocks * 512;
  let files = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = diskBytes(full);
      blocks += inner.blocks;
      files += inner.files;
    } else {
      blocks += fs.statSync(full).blocks * 512;
      files++;
    }
  }
  return { blocks, files };
}

/** One session written by sessionlock itself: the template every other one copies. */
async function template(options: SessionOptions): Promise<string> {
  const session = await Session.open(undefined, options);
  Object.assign(session.data, sessionData(1));
  await session.save();
  return session.id;
}

async function createOnDisk(kind: 'file' | 'dbm', size: number, root: string): Promise<Dataset> {
  const dataDir = path.join(root, `${kind}-${label(size)}`);
  fs.mkdirSync(dataDir, { recursive: true });
  const options: SessionOptions = { type: kind, dataDir, key: COOKIE_KEY, accessResolution: 86_400 };
  const first = await template(options);
  await DBMNamespaceManager.closeFiles();
  const ids = [first];
  const bar = progress(`create ${kind} ${label(size)}`, size);
  if (kind === 'file') {
    const record = readNamespaceFile(fs.readFileSync(path.join(dataDir, `${first}.json`)))?.record ?? '';
    if (!record.includes(`"${first}"`)) throw new Error('the file format no longer names the namespace as expected');
    for (let i = 1; i < size; i++) {
      const id = newSessionId();
      fs.writeFileSync(
        path.join(dataDir, `${id}.json`),
        newNamespaceFile(record.replace(`"${first}"`, `"${id}"`), 1).bytes,
      );
      ids.push(id);
      if ((i & 1023) === 0) bar.update(i);
    }
  } else {
    const data = path.join(dataDir, `${first}.mdb`);
    // Written from memory (same bytes, same modes): five times faster here than copyFileSync.
    const copies = [data, `${data}-lock`].map((file) => ({
      suffix: file.slice(data.length),
      bytes: fs.readFileSync(file),
      mode: fs.statSync(file).mode & 0o777,
    }));
    for (let i = 1; i < size; i++) {
      const id = newSessionId();
      for (const { suffix, bytes, mode } of copies)
        fs.writeFileSync(path.join(dataDir, `${id}.mdb${suffix}`), bytes, { mode });
      ids.push(id);
      if ((i & 1023) === 0) bar.update(i);
    }
  }
  bar.finish();
  return { kind, size, ids, options, dataDir };
}

async function createInRedis(size: number, url: string, client: Redis): Promise<Dataset> {
  const prefix = `scale${label(size)}:`;
  const options: SessionOptions = { type: 'redis', url, prefix, key: COOKIE_KEY, accessResolution: 86_400 };
  const first = await template(options);
  const fields = await client.hgetall(new RedisNamespaceManager(first, { url, prefix }).dataKey);
  const flat = Object.entries(fields).flat();
  const ids = [first];
  const bar = progress(`create redis ${label(size)}`, size);
  for (let start = 1; start < size; start += 1000) {
    const pipeline = client.pipeline();
    for (let i = start; i < Math.min(size, start + 1000); i++) {
      const id = newSessionId();
      pipeline.hset(new RedisNamespaceManager(id, { url, prefix }).dataKey, ...flat);
      ids.push(id);
    }
    await pipeline.exec();
    bar.update(start);
  }
  bar.finish();
  return { kind: 'redis', size, ids, options };
}

async function usedMemory(client: Redis): Promise<number> {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

async function createDatasets(results: Results, root: string, redisUrl: string | undefined): Promise<Dataset[]> {
  const datasets: Dataset[] = [];
  for (const kind of ['file', 'dbm'] as const) {
    for (const size of SIZES) {
      const started = performance.now();
      const dataset = await createOnDisk(kind, size, root);
      const seconds = (performance.now() - started) / 1000;
      const disk = diskBytes(dataset.dataDir as string);
      results.add(SESSIONLOCK_NAME[kind], `${label(size)}: bytes per session`, 'bytes (disk blocks)', [
        disk.blocks / size,
      ]);
      results.add(SESSIONLOCK_NAME[kind], `${label(size)}: files per session`, 'files', [disk.files / size]);
      results.add(SESSIONLOCK_NAME[kind], `${label(size)}: create s`, 's', [seconds]);
      datasets.push(dataset);
    }
  }
  if (!redisUrl) return datasets;
  // Connected only now: the synchronous file copies above would time its connection out.
  const client = new Redis(redisUrl);
  try {
    for (const size of SIZES) {
      const started = performance.now();
      const before = await usedMemory(client);
      const dataset = await createInRedis(size, redisUrl, client);
      const bytes = ((await usedMemory(client)) - before) / size;
      results.add(SESSIONLOCK_NAME.redis, `${label(size)}: bytes per session`, 'bytes (memory)', [bytes]);
      results.add(SESSIONLOCK_NAME.redis, `${label(size)}: create s`, 's', [(performance.now() - started) / 1000]);
      datasets.push(dataset);
    }
  } finally {
    await client.quit();
  }
  return datasets;
}

async function measureLoads(results: Results, datasets: Dataset[]): Promise<void> {
  let missing = 0;
  const contenders: Contender[] = datasets.map((dataset) => {
    const picks = randomPicks(LOADS * (ROUNDS + 1), dataset.size, dataset.size);
    return {
      name: `${dataset.kind} ${label(dataset.size)}`,
      run: async (round) => {
        const latencies: number[] = [];
        const offset = (round + 1) * LOADS;
        const loads = round < 0 ? WARMUP_LOADS : LOADS;
        for (let i = 0; i < loads; i++) {
          const id = dataset.ids[picks[offset + i] as number] as string;
          const started = performance.now();
          const session = await Session.open({ headers: { cookie: `${COOKIE_KEY}=${id}` } }, dataset.options);
          latencies.push(performance.now() - started);
          if (session.isNew) missing++;
          await nextTurn();
        }
        return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
      },
    };
  });
  const measured = await interleave('scale loads', contenders, ROUNDS);
  if (missing > 0) fail(`${missing} loads did not find their stored session`);
  for (const dataset of datasets) {
    const metrics = measured.get(`${dataset.kind} ${label(dataset.size)}`) as Map<string, number[]>;
    results.add(SESSIONLOCK_NAME[dataset.kind], `${label(dataset.size)}: load p50 ms`, 'ms', metrics.get('p50') ?? []);
    results.add(SESSIONLOCK_NAME[dataset.kind], `${label(dataset.size)}: load p99 ms`, 'ms', metrics.get('p99') ?? []);
  }
}

async function measureSweeps(results: Results, datasets: Dataset[]): Promise<void> {
  for (const dataset of datasets) {
    if (dataset.kind === 'redis' || dataset.size !== SWEEP_SIZE) continue;
    await DBMNamespaceManager.closeFiles();
    const bar = progress(`sweep ${dataset.kind} ${label(SWEEP_SIZE)}`, SWEEP_SIZE);
    let removed = 0;
    const started = performance.now();
    const result = await sweep({
      dataDir: dataset.dataDir as string,
      timeout: 0,
      type: dataset.kind,
      onRemove: () => {
        if ((++removed & 255) === 0) bar.update(removed);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    bar.finish(`${formatNumber(result.removed / seconds)} sessions/s`);
    if (result.removed !== SWEEP_SIZE)
      fail(`sweep removed ${result.removed} of ${SWEEP_SIZE} ${dataset.kind} sessions`);
    const name = SESSIONLOCK_NAME[dataset.kind];
    results.add(name, `sweep ${label(SWEEP_SIZE)} s`, 's', [seconds]);
    results.add(name, 'sweep sessions/s', 'sessions/s', [result.removed / seconds]);
  }
}

function report(results: Results, kinds: Kind[]): void {
  const ms = (v: number) => v.toFixed(2);
  const bytes = (v: number) => formatNumber(Math.round(v));
  const columns = SIZES.flatMap((size) => [
    {
      label: `${label(size)}: load p50 ms`,
      cell: (s: string, r: Results) => r.cell(s, `${label(size)}: load p50 ms`, ms),
    },
    { label: 'p99 ms', cell: (s: string, r: Results) => r.cell(s, `${label(size)}: load p99 ms`, ms) },
    { label: 'bytes/session', cell: (s: string, r: Results) => r.cell(s, `${label(size)}: bytes per session`, bytes) },
  ]);
  const systems = kinds.map((k) => SESSIONLOCK_NAME[k]);
  results.table(
    `Loads of random sessions among ${SIZES.map(label).join(' / ')} stored (median of ${ROUNDS} rounds of ${LOADS})`,
    systems,
    columns,
  );
  results.table(`sweep() of ${label(SWEEP_SIZE)} expired sessions`, systems.slice(0, 2), [
    { label: 'seconds', cell: (s, r) => r.cell(s, `sweep ${label(SWEEP_SIZE)} s`, (v) => v.toFixed(1)) },
    { label: 'sessions/s', metric: 'sweep sessions/s' },
    {
      label: `creating ${label(SWEEP_SIZE)} (copies) s`,
      cell: (s, r) => r.cell(s, `${label(SWEEP_SIZE)}: create s`, (v) => v.toFixed(1)),
    },
  ]);
  const largest = SIZES[SIZES.length - 1] as number;
  if (largest === SIZES[0]) return;
  for (const kind of kinds) {
    const name = SESSIONLOCK_NAME[kind];
    const smallMetric = `${label(SIZES[0] as number)}: load p99 ms`;
    const bigMetric = `${label(largest)}: load p99 ms`;
    const ratios = results.pairedRatios(name, name, bigMetric, smallMetric);
    if (!ratios) continue;
    const row = results.add(name, `p99 ratio ${label(largest)}/${label(SIZES[0] as number)}`, '×', ratios);
    const medians = [bigMetric, smallMetric].map((m) => (results.get(name, m)?.value ?? Number.NaN).toFixed(2));
    results.target(
      `scale: ${name} load p99 at ${label(largest)} ≤ 2× p99 at 1k`,
      `${formatRatio(row)} (medians ${medians.join(' vs ')} ms)`,
      row.value <= 2,
    );
  }
}

async function main(): Promise<void> {
  const results = new Results('scale');
  const root = makeScratchDir('scale');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const kinds: Kind[] = redis ? ['file', 'dbm', 'redis'] : ['file', 'dbm'];
  const datasets = await createDatasets(results, root, redis?.url);
  const flushed = flushDisk();
  await measureLoads(results, datasets);
  await measureSweeps(results, datasets);
  report(results, kinds);
  results.note(
    'Sessions are created by copying what sessionlock wrote for one session (dbm: the LMDB file and its -lock file; file: its record with the namespace changed, encoded by the file format’s own encoder; redis: the hash). Loads are read-only Session.open() calls (accessResolution 1 day, so no access-time write), one at a time, each followed (untimed) by a turn of the event loop, as a server takes between requests (without one, lmdb-js keeps every LMDB file closed meanwhile in memory until its timers run); dbm keeps its default 512 open LMDB files.',
  );
  results.note(
    `After creating the sessions, \`sync\` flushed them to disk (${flushed.toFixed(1)} s) before anything was timed.`,
  );
  results.note(
    'Bytes per session: file and dbm count the disk blocks (stat.blocks × 512) of every file and directory in the data directory, LMDB -lock files included; redis counts used_memory.',
  );
  results.note(
    `sweep() (lib/sweep.ts) with timeout 0, so every session counts as expired; redis sessions expire by TTL instead. Swept: the ${label(SWEEP_SIZE)} sets, after the loads.`,
  );
  results.write();
  await RedisNamespaceManager.closeConnections();
  await DBMNamespaceManager.closeFiles();
  fs.rmSync(root, { recursive: true, force: true });
}

runScenario(import.meta, main);

/** A session id of the kind applications may bring (32 hex characters), for the copies. */
function newSessionId(): string {
  return randomBytes(16).toString('hex');
}
