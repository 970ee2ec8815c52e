/**
 * Scenario `readers` (Myghty's IFRAME case): a page fires 16 concurrent read-only requests of
 * one session. Each loads the session and then spends 5 ms producing its response. Measured
 * with nothing holding the session's lock, and while another request holds it for 20 ms and
 * saves a change; for sessionlock's load-then-unlock and for a whole-request lock (each
 * request holding lock() for its duration, as PHP's file sessions do).
 *
 *   tsx bench/readers.ts [--quick]
 * @module
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Session, type SessionOptions } from 'sessionlock';
import { type Contender, fail, interleave, median, quick, Results, runScenario } from './lib/harness.js';
import { benchRedis, redisAvailable } from './lib/redis.js';
import {
  BACKENDS,
  COOKIE_KEY,
  type Environment,
  makeScratchDir,
  SESSIONLOCK_NAME,
  sessionlockSystem,
} from './lib/systems.js';

const READERS = 16;
const WORK_MS = 5;
const HOLD_MS = 20;
const ROUNDS = quick ? 3 : 15;

type Strategy = 'load-then-unlock' | 'whole-request lock';
const STRATEGIES: Strategy[] = ['load-then-unlock', 'whole-request lock'];
type Case = 'idle' | 'writer';
const CASES: { id: Case; label: string }[] = [
  { id: 'idle', label: 'nothing holds the lock' },
  { id: 'writer', label: `a writer holds it ${HOLD_MS} ms` },
];

async function main(): Promise<void> {
  const results = new Results('readers');
  const dir = makeScratchDir('readers');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const env: Environment = { dir, ...(redis ? { redisUrl: redis.url } : {}) };
  const backends = BACKENDS.filter((b) => b !== 'redis' || redis);
  let mismatches = 0;

  const contenders: Contender[] = [];
  for (const backend of backends) {
    const system = sessionlockSystem(backend, env);
    const options = system.options as SessionOptions;
    const [id] = await system.seed(1);
    const request = { headers: { cookie: `${COOKIE_KEY}=${id}` } };
    let version = 0;

    const reader = async (strategy: Strategy, expected: number | undefined) => {
      const started = performance.now();
      const session = await Session.open(request, options);
      if (strategy === 'whole-request lock') await session.lock();
      const seen = session.data.version as number | undefined;
      await sleep(WORK_MS);
      if (strategy === 'whole-request lock') await session.unlock();
      if (expected !== undefined && seen !== expected) mismatches++;
      return performance.now() - started;
    };

    for (const strategy of STRATEGIES) {
      for (const { id: which } of CASES) {
        contenders.push({
          name: `${SESSIONLOCK_NAME[backend]} · ${strategy} · ${which}`,
          run: async () => {
            const started = performance.now();
            let latencies: number[];
            if (which === 'idle') {
              latencies = await Promise.all(Array.from({ length: READERS }, () => reader(strategy, undefined)));
            } else {
              const writer = await Session.open(request, options);
              await writer.lock();
              const next = ++version;
              const writing = (async () => {
                writer.data.version = next;
                await sleep(HOLD_MS);
                await writer.save();
                await writer.unlock();
              })();
              latencies = await Promise.all(Array.from({ length: READERS }, () => reader(strategy, next)));
              await writing;
            }
            return {
              'all served ms': performance.now() - started,
              'median latency ms': median(latencies),
            };
          },
        });
      }
    }
  }

  const measured = await interleave('readers', contenders, ROUNDS);
  const rows: string[] = [];
  for (const backend of backends) {
    for (const strategy of STRATEGIES) {
      const system = `${SESSIONLOCK_NAME[backend]} · ${strategy}`;
      rows.push(system);
      for (const { id: which } of CASES) {
        const metrics = measured.get(`${system} · ${which}`) as Map<string, number[]>;
        results.add(system, `${which}: all served ms`, 'ms', metrics.get('all served ms') ?? []);
        results.add(system, `${which}: median latency ms`, 'ms', metrics.get('median latency ms') ?? []);
      }
    }
  }
  const ms = (v: number) => v.toFixed(1);
  results.table(
    `${READERS} concurrent read-only requests of one session, ${WORK_MS} ms of work each (ms, median of ${ROUNDS} rounds, min–max)`,
    rows,
    CASES.flatMap(({ id: which, label }) => [
      {
        label: `${label}: all ${READERS} served`,
        cell: (s: string, r: Results) => r.cell(s, `${which}: all served ms`, ms),
      },
      { label: 'median request', cell: (s: string, r: Results) => r.cell(s, `${which}: median latency ms`, ms) },
    ]),
  );
  results.note(
    `In one process. The writer loads, takes lock(), changes a key, waits ${HOLD_MS} ms, saves and unlocks; the readers start right after it took the lock, and every reader must see its change (checked: ${mismatches} saw an older value).`,
  );
  results.note(
    `Ideal: idle ≈ ${WORK_MS} ms plus one load; with the writer ≈ ${HOLD_MS + WORK_MS} ms. A whole-request lock serialises the readers: ≈ ${READERS} × ${WORK_MS} ms more.`,
  );
  results.write();
  if (redis) await sessionlockSystem('redis', env).close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (mismatches > 0) fail(`${mismatches} readers did not see the change saved by the writer that held the lock`);
}

runScenario(import.meta, main);
