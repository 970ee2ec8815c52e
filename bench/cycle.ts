/**
 * Scenario `cycle`: 1,000 stored sessions (200 with --quick); load a random one, change one key, save it. One at
 * a time and 32 in flight, for every sessionlock backend (Session API) and every peer store
 * (its own get/set), beside the raw limit of each kind of storage.
 *
 *   tsx bench/cycle.ts [--quick]
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RedisServer } from '../spec/fixtures/redis-server.js';
import {
  type Contender,
  flushDisk,
  formatNumber,
  formatRatio,
  interleave,
  progress,
  quick,
  Results,
  runScenario,
  throughput,
} from './lib/harness.js';
import { fsReadWriteRename, lmdbGetPutAsync, lmdbGetPutSync, type RawOp, redisGetSet } from './lib/raw.js';
import { benchRedis, clientCommands, redisAvailable } from './lib/redis.js';
import {
  BACKENDS,
  type Backend,
  type Environment,
  makeScratchDir,
  PEER_NAME,
  PEERS,
  peerSystem,
  randomPicks,
  SESSIONLOCK_NAME,
  type SessionSystem,
  sessionlockSystem,
} from './lib/systems.js';

const SESSIONS = quick ? 200 : 1000;
const ROUNDS = quick ? 1 : 4;
const DURATION = quick ? 150 : 700;
const MODES = [
  { label: '1 at a time', concurrency: 1 },
  { label: '32 in flight', concurrency: 32 },
] as const;

/** Which raw loop bounds each backend, per mode. */
const LIMIT_NAME: Record<Exclude<Backend, 'memory'>, string> = {
  file: 'limit: fs read + write temp + rename',
  dbm: 'limit: LMDB get + put (synced)',
  redis: 'limit: Redis GET + SET',
};

interface Limit {
  name: string;
  /** The loop for each mode: one at a time, 32 in flight. */
  modes: [RawOp, RawOp];
}

async function createSystems(env: Environment, withRedis: boolean): Promise<SessionSystem[]> {
  const systems: SessionSystem[] = [];
  for (const backend of BACKENDS) if (backend !== 'redis' || withRedis) systems.push(sessionlockSystem(backend, env));
  for (const peer of PEERS) if (peer !== 'RedisStore' || withRedis) systems.push(await peerSystem(peer, env));
  return systems;
}

async function createLimits(dir: string, redisUrl: string | undefined): Promise<Limit[]> {
  const fsOp = fsReadWriteRename(path.join(dir, 'fs'));
  const limits: Limit[] = [
    { name: LIMIT_NAME.file, modes: [fsOp, fsOp] },
    {
      name: LIMIT_NAME.dbm,
      modes: [lmdbGetPutSync(path.join(dir, 'lmdb-sync')), lmdbGetPutAsync(path.join(dir, 'lmdb-async'))],
    },
  ];
  if (redisUrl) {
    const redisOp = await redisGetSet(redisUrl);
    limits.push({ name: LIMIT_NAME.redis, modes: [redisOp, redisOp] });
  }
  return limits;
}

/** Commands sent to Redis per cycle (scripts count once), from 200 cycles watched with MONITOR. */
async function redisCommandsPerCycle(
  redis: RedisServer,
  systems: SessionSystem[],
  seeded: Map<string, string[]>,
): Promise<Map<string, number>> {
  const perCycle = new Map<string, number>();
  for (const system of systems) {
    if (system.name !== SESSIONLOCK_NAME.redis && system.name !== PEER_NAME.RedisStore) continue;
    const handles = seeded.get(system.name) as string[];
    const cycles = 200;
    const commands = await clientCommands(redis, async () => {
      for (let i = 0; i < cycles; i++) await system.cycle(handles[i] as string);
    });
    perCycle.set(system.name, commands / cycles);
  }
  return perCycle;
}

function timed(name: string, concurrency: number, op: (i: number) => unknown): Contender {
  return {
    name,
    run: async () => ({ cycles: (await throughput(op, { duration: DURATION, concurrency })).perSecond }),
  };
}

function contendersFor(systems: SessionSystem[], seeded: Map<string, string[]>, limits: Limit[]): Contender[] {
  const picks = randomPicks(1 << 16, SESSIONS);
  const pick = (i: number) => picks[i & 0xffff] as number;
  const contenders: Contender[] = [];
  for (const [m, mode] of MODES.entries()) {
    for (const system of systems) {
      const handles = seeded.get(system.name) as string[];
      contenders.push(
        timed(`${system.name} · ${mode.label}`, mode.concurrency, (i) => system.cycle(handles[pick(i)] as string)),
      );
    }
    for (const limit of limits) {
      const op = limit.modes[m] as RawOp;
      contenders.push(timed(`${limit.name} · ${mode.label}`, mode.concurrency, (i) => op.op(pick(i))));
    }
  }
  return contenders;
}

/** " · 42% of limit" for a sessionlock backend's cell. */
function fractionOfLimit(results: Results, system: string, metric: string): string {
  const backend = BACKENDS.find((b) => SESSIONLOCK_NAME[b] === system);
  if (!backend || backend === 'memory') return '';
  const own = results.get(system, metric)?.value;
  const limit = results.get(LIMIT_NAME[backend], metric)?.value;
  return own && limit ? ` · ${Math.round((own / limit) * 100)}% of limit` : '';
}

function report(results: Results, names: string[]): void {
  const columns = MODES.map((mode) => ({
    label: `cycles/s, ${mode.label}`,
    cell: (system: string, r: Results) => {
      const metric = `cycles/s ${mode.label}`;
      const cell = r.cell(system, metric);
      return cell === '–' ? cell : cell + fractionOfLimit(r, system, metric);
    },
  }));
  results.table(
    `load → change one key → save, ${formatNumber(SESSIONS)} sessions (median of ${ROUNDS} rounds, min–max)`,
    names,
    [
      ...columns,
      { label: 'Redis commands per cycle', cell: (s, r) => r.cell(s, 'redis commands per cycle', (v) => v.toFixed(2)) },
    ],
  );
  const pairs: [Backend, string, number][] = [
    ['dbm', PEER_NAME.FileStore, 10],
    ['file', PEER_NAME.FileStore, 3],
    ['memory', PEER_NAME.MemoryStore, 1],
    ['redis', PEER_NAME.RedisStore, 1],
  ];
  for (const [backend, peer, required] of pairs) {
    for (const mode of MODES) {
      const metric = `cycles/s ${mode.label}`;
      const ratios = results.pairedRatios(SESSIONLOCK_NAME[backend], peer, metric);
      if (!ratios) continue;
      const row = results.add(SESSIONLOCK_NAME[backend], `ratio to ${peer} ${mode.label}`, '×', ratios);
      results.target(
        `cycle ${mode.label}: ${backend} ≥ ${required}× ${peer}`,
        `${formatRatio(row)} (medians ${formatNumber(results.get(SESSIONLOCK_NAME[backend], metric)?.value ?? Number.NaN)} vs ${formatNumber(results.get(peer, metric)?.value ?? Number.NaN)}/s)`,
        row.value >= required,
      );
    }
  }
  const commands = results.get(SESSIONLOCK_NAME.redis, 'redis commands per cycle')?.value;
  if (commands !== undefined) {
    results.target(
      'cycle: redis one round trip per load and one per save',
      `${commands.toFixed(2)} commands per cycle`,
      commands <= 2,
    );
  }
}

async function main(): Promise<void> {
  const results = new Results('cycle');
  const dir = makeScratchDir('cycle');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const env: Environment = { dir, ...(redis ? { redisUrl: redis.url } : {}) };
  if (!redis) results.note('redis-server not found: the Redis systems were skipped');

  const systems = await createSystems(env, redis !== undefined);
  const seeded = new Map<string, string[]>();
  const bar = progress(`seed ${formatNumber(SESSIONS)} sessions per system`, systems.length);
  for (const [i, system] of systems.entries()) {
    bar.update(i, system.name);
    seeded.set(system.name, await system.seed(SESSIONS));
  }
  bar.finish();
  const limits = await createLimits(path.join(dir, 'raw'), redis?.url);
  flushDisk();
  const perCycle = redis ? await redisCommandsPerCycle(redis, systems, seeded) : new Map<string, number>();

  const measured = await interleave('cycle', contendersFor(systems, seeded, limits), ROUNDS);
  const names = [...systems.map((s) => s.name), ...limits.map((l) => l.name)];
  for (const name of names) {
    for (const mode of MODES) {
      const runs = measured.get(`${name} · ${mode.label}`)?.get('cycles');
      if (runs) results.add(name, `cycles/s ${mode.label}`, 'cycles/s', runs);
    }
  }
  for (const [name, value] of perCycle) results.add(name, 'redis commands per cycle', 'commands', [value]);
  report(results, names);
  results.note(
    'Each cycle: sessionlock Session.open({ headers: { cookie } }) → data.visits++ → save(); peers store.get(sid) → visits++ → store.set(sid). Limits: the same change with nothing but the storage calls (fs: read + write temp + rename; LMDB: get + putSync, and put() batched for 32 in flight; Redis: GET + SET).',
  );
  results.note(
    'Redis commands per cycle: counted with MONITOR over 200 cycles outside the timed rounds; a Lua script counts once.',
  );
  results.write();

  for (const system of systems) await system.close();
  for (const limit of limits) for (const op of new Set(limit.modes)) await op.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

runScenario(import.meta, main);
