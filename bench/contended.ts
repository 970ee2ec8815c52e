/**
 * Scenario `contended`: 4 processes × 250 increments of one session's counter. sessionlock
 * increments under `withLock` (file, dbm, redis) and must end exact; the peer stores have no
 * lock, so they show how many increments a last-writer-wins store loses.
 *
 *   tsx bench/contended.ts [--quick]
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WorkerMessage, WorkerReply, WorkerSystem } from './lib/contended-worker.js';
import { type Contender, fail, formatNumber, interleave, quick, Results, runScenario } from './lib/harness.js';
import { benchRedis, redisAvailable } from './lib/redis.js';
import {
  type Environment,
  makeScratchDir,
  PEER_NAME,
  type Peer,
  peerSystem,
  SESSIONLOCK_NAME,
  type SessionSystem,
  sessionlockSystem,
} from './lib/systems.js';

const PROCESSES = 4;
const INCREMENTS = quick ? 100 : 250;
const ROUNDS = quick ? 1 : 3;
const WORKER = fileURLToPath(new URL('./lib/contended-worker.ts', import.meta.url));

interface Worker {
  child: ChildProcess;
  next(): Promise<WorkerReply>;
  send(message: WorkerMessage): void;
}

function startWorker(): Worker {
  const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: WorkerReply[] = [];
  const waiting: ((reply: WorkerReply) => void)[] = [];
  child.on('message', (message: WorkerReply) => {
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  child.on('exit', (code) => {
    if (code) fail(`a contended worker exited with code ${code}`);
  });
  return {
    child,
    next: () => {
      const queued = queue.shift();
      return queued ? Promise.resolve(queued) : new Promise((resolve) => waiting.push(resolve));
    },
    send: (message) => child.send(message),
  };
}

interface Entry {
  name: string;
  worker: WorkerSystem;
  /** Seeds the round's session and reads its counter back, in this process. */
  local: SessionSystem;
  locked: boolean;
}

async function createEntries(env: Environment, withRedis: boolean): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (const backend of ['file', 'dbm', 'redis'] as const) {
    if (backend === 'redis' && !withRedis) continue;
    entries.push({
      name: SESSIONLOCK_NAME[backend],
      worker: { kind: 'sessionlock', backend },
      local: sessionlockSystem(backend, env),
      locked: true,
    });
  }
  for (const peer of ['FileStore', 'RedisStore'] as Peer[]) {
    if (peer === 'RedisStore' && !withRedis) continue;
    entries.push({
      name: PEER_NAME[peer],
      worker: { kind: 'peer', peer },
      local: await peerSystem(peer, env),
      locked: false,
    });
  }
  return entries;
}

/** One round of one system: a fresh session, every worker increments it, then the counter is read back. */
function contender(
  entry: Entry,
  workers: Worker[],
  env: Environment,
  errors: string[],
  violations: string[],
): Contender {
  return {
    name: entry.name,
    run: async (round) => {
      const [handle] = await entry.local.seed(1);
      const count = round < 0 ? Math.ceil(INCREMENTS / 5) : INCREMENTS;
      const started = performance.now();
      for (const w of workers) w.send({ type: 'run', system: entry.worker, env, handle: handle as string, count });
      const replies = await Promise.all(workers.map((w) => w.next()));
      const seconds = (performance.now() - started) / 1000;
      const data = (await entry.local.load(handle as string)) as { visits: number };
      let failed = 0;
      for (const reply of replies) {
        if (reply.type !== 'done') continue;
        failed += reply.errors;
        if (reply.firstError) errors.push(`${entry.name}: ${reply.firstError}`);
      }
      const succeeded = PROCESSES * count - failed;
      if (entry.locked && (failed > 0 || data.visits !== succeeded)) {
        violations.push(
          `${entry.name} ${round < 0 ? 'warm-up' : `round ${round + 1}`}: counter ${data.visits} after ${succeeded} increments, ${failed} failed`,
        );
      }
      return {
        lost: succeeded - data.visits,
        'lost %': ((succeeded - data.visits) / succeeded) * 100,
        'increments/s': succeeded / seconds,
        failed,
      };
    },
  };
}

function report(results: Results, entries: Entry[]): void {
  results.table(
    `${PROCESSES} processes × ${INCREMENTS} increments of one session (median of ${ROUNDS} rounds, min–max)`,
    entries.map((e) => e.name),
    [
      { label: 'lock', cell: (s) => (entries.find((e) => e.name === s)?.locked ? 'withLock()' : 'none (has none)') },
      { label: 'increments/s', metric: 'increments/s' },
      { label: `lost of ${PROCESSES * INCREMENTS}`, metric: 'lost updates' },
      { label: 'lost %', cell: (s, r) => r.cell(s, 'lost %', (v) => v.toFixed(1)) },
      { label: 'failed', metric: 'failed increments' },
    ],
  );
  for (const entry of entries.filter((e) => e.locked)) {
    const lost = (results.get(entry.name, 'lost updates')?.runs ?? []).reduce((a, b) => a + Math.abs(b), 0);
    results.target(`contended: ${entry.name} exact`, `${lost} lost in ${ROUNDS} rounds`, lost === 0);
  }
  const speeds: [string, number][] = [
    [SESSIONLOCK_NAME.dbm, 2400],
    [SESSIONLOCK_NAME.file, 1300],
  ];
  for (const [name, required] of speeds) {
    const value = results.get(name, 'increments/s')?.value ?? Number.NaN;
    results.target(
      `contended: ${name} ≥ ${formatNumber(required)} increments/s`,
      `${formatNumber(value)}/s`,
      value >= required,
    );
  }
}

async function main(): Promise<void> {
  const results = new Results('contended');
  const dir = makeScratchDir('contended');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const env: Environment = { dir, ...(redis ? { redisUrl: redis.url } : {}) };
  const entries = await createEntries(env, redis !== undefined);

  const workers = Array.from({ length: PROCESSES }, startWorker);
  await Promise.all(workers.map((w) => w.next()));
  for (const entry of entries) {
    for (const w of workers) w.send({ type: 'prepare', system: entry.worker, env });
    await Promise.all(workers.map((w) => w.next()));
  }
  const errors: string[] = [];
  const violations: string[] = [];
  const measured = await interleave(
    'contended',
    entries.map((entry) => contender(entry, workers, env, errors, violations)),
    ROUNDS,
  );
  for (const w of workers) w.send({ type: 'exit' });
  await Promise.all(workers.map((w) => once(w.child, 'exit')));

  for (const entry of entries) {
    const metrics = measured.get(entry.name) as Map<string, number[]>;
    results.add(entry.name, 'increments/s', 'increments/s', metrics.get('increments/s') ?? []);
    results.add(entry.name, 'lost updates', 'increments', metrics.get('lost') ?? []);
    results.add(entry.name, 'lost %', '%', metrics.get('lost %') ?? []);
    results.add(entry.name, 'failed increments', 'increments', metrics.get('failed') ?? []);
  }
  report(results, entries);
  results.note(
    'sessionlock: each increment is Session.open() then withLock(s => s.data.visits++) (lock, reload, save, unlock), in 4 processes forked with tsx.',
  );
  results.note(
    'Peers: store.get → visits++ → store.set, as express-session does on every request; they offer no lock.',
  );
  results.write();
  for (const entry of entries) await entry.local.close();
  fs.rmSync(dir, { recursive: true, force: true });

  if (errors.length > 0) process.stderr.write(`errors:\n  ${errors.join('\n  ')}\n`);
  if (violations.length > 0)
    fail(`sessionlock lost or failed increments under withLock:\n  ${violations.join('\n  ')}`);
  process.stdout.write('sessionlock under withLock: lost = 0 on every backend, every round.\n');
}

runScenario(import.meta, main);
