/**
 * Scenario `http`: autocannon against node:http + sessionlock and Express + sessionlock (the
 * session locked for every request), and against Express 5 + express-session with each peer
 * store. 32 connections share one session cookie; every request increments a counter in the
 * session. Reported: requests/s, p99 latency, and increments lost (counter vs completed requests).
 * Each server runs in its own process; autocannon runs in this one.
 *
 *   tsx bench/http.ts [--quick]
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import {
  type Contender,
  fail,
  formatNumber,
  formatRatio,
  interleave,
  quick,
  Results,
  runScenario,
} from './lib/harness.js';
import type { ServerSpec } from './lib/http-server.js';
import { benchRedis, redisAvailable } from './lib/redis.js';
import { type Environment, makeScratchDir, PEER_NAME } from './lib/systems.js';

const CONNECTIONS = 32;
const DURATION = 10;
const WARMUP = 2;
/** --quick skips the warm-up and sends rounds of this many requests. */
const QUICK_REQUESTS = 256;
const ROUNDS = quick ? 1 : 2;
const SERVER = fileURLToPath(new URL('./lib/http-server.ts', import.meta.url));

interface Server {
  name: string;
  spec: ServerSpec;
  locked: boolean;
  child?: ChildProcess;
  base?: string;
}

function nameOf(spec: ServerSpec): string {
  return 'peer' in spec ? `Express + ${PEER_NAME[spec.peer]}` : `${spec.kind} ${spec.backend}`;
}

async function start(server: Server): Promise<void> {
  const child = fork(SERVER, [JSON.stringify(server.spec)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = () => fail(`the ${server.name} server exited before it listened`);
  child.once('exit', exited);
  const [message] = (await once(child, 'message')) as [{ port: number }];
  child.off('exit', exited);
  server.child = child;
  server.base = `http://127.0.0.1:${message.port}`;
}

async function json(url: string, cookie?: string): Promise<{ response: Response; body: Record<string, unknown> }> {
  const response = await fetch(url, cookie ? { headers: { cookie } } : {});
  return { response, body: (await response.json()) as Record<string, unknown> };
}

async function main(): Promise<void> {
  const results = new Results('http');
  const dir = makeScratchDir('http');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const env: Environment = { dir, ...(redis ? { redisUrl: redis.url } : {}) };
  const specs: ServerSpec[] = [
    { kind: 'node:http + sessionlock', backend: 'dbm', env },
    { kind: 'Express + sessionlock', backend: 'dbm', env },
    { kind: 'Express + sessionlock', backend: 'file', env },
    ...(redis ? [{ kind: 'Express + sessionlock', backend: 'redis', env } as const] : []),
    { kind: 'Express + express-session', peer: 'MemoryStore', env },
    { kind: 'Express + express-session', peer: 'FileStore', env },
    ...(redis ? [{ kind: 'Express + express-session', peer: 'RedisStore', env } as const] : []),
  ];
  const servers: Server[] = specs.map((spec) => ({ name: nameOf(spec), spec, locked: !('peer' in spec) }));
  await Promise.all(servers.map(start));

  const rates = new Map<string, number>();
  const contenders: Contender[] = servers.map((server) => ({
    name: server.name,
    run: async (round) => {
      const base = server.base as string;
      const started = await json(`${base}/start`);
      const cookie = (started.response.headers.get('set-cookie') ?? '').split(';')[0] as string;
      if (!cookie) fail(`${server.name}: /start set no cookie`);
      if (round < 0) {
        if (quick) return {};
        // The warm-up, by time, measures the rate that sizes the rounds.
        const warmup = await autocannon({
          url: `${base}/increment`,
          connections: CONNECTIONS,
          duration: WARMUP,
          headers: { cookie },
        });
        rates.set(server.name, warmup['2xx'] / warmup.duration);
        await sleep(200);
        return {};
      }
      // Rounds send a fixed number of requests (about DURATION seconds' worth) and wait for
      // every response, so no request is cut off and "completed" is exact.
      const amount = quick
        ? QUICK_REQUESTS
        : Math.max(CONNECTIONS * 4, Math.round((rates.get(server.name) ?? 100) * DURATION));
      const result = await autocannon({
        url: `${base}/increment`,
        connections: CONNECTIONS,
        amount,
        headers: { cookie },
      });
      const { body } = await json(`${base}/count`, cookie);
      const n = Number(body.n);
      const completed = result['2xx'];
      return {
        'req/s': completed / result.duration,
        'p99 ms': result.latency.p99,
        'lost %': ((completed - n) / completed) * 100,
        lost: completed - n,
        completed,
        'errors+non2xx': result.errors + result.non2xx,
        seconds: result.duration,
      };
    },
  }));
  const measured = await interleave('http', contenders, ROUNDS);
  for (const server of servers) server.child?.disconnect();
  await Promise.all(servers.map((s) => (s.child && s.child.exitCode === null ? once(s.child, 'exit') : undefined)));

  for (const server of servers) {
    const metrics = measured.get(server.name) as Map<string, number[]>;
    results.add(server.name, 'req/s', 'req/s', metrics.get('req/s') ?? []);
    results.add(server.name, 'p99 latency', 'ms', metrics.get('p99 ms') ?? []);
    results.add(server.name, 'lost %', '%', metrics.get('lost %') ?? []);
    results.add(server.name, 'lost increments', 'increments', metrics.get('lost') ?? []);
    results.add(server.name, 'completed increments', 'increments', metrics.get('completed') ?? []);
    results.add(server.name, 'errors and non-2xx', 'responses', metrics.get('errors+non2xx') ?? []);
    results.add(server.name, 'round seconds', 's', metrics.get('seconds') ?? []);
  }
  results.table(
    `${CONNECTIONS} connections, one session, ${quick ? `${QUICK_REQUESTS} requests` : `${DURATION} s`}, every request increments a counter (median of ${ROUNDS} rounds, min–max)`,
    servers.map((s) => s.name),
    [
      { label: 'session lock', cell: (s) => (servers.find((x) => x.name === s)?.locked ? 'every request' : 'none') },
      { label: 'req/s', metric: 'req/s' },
      { label: 'p99 ms', cell: (s, r) => r.cell(s, 'p99 latency', (v) => v.toFixed(0)) },
      { label: 'increments lost', metric: 'lost increments' },
      { label: 'lost %', cell: (s, r) => r.cell(s, 'lost %', (v) => v.toFixed(1)) },
      { label: 'errors', metric: 'errors and non-2xx' },
    ],
  );
  for (const server of servers.filter((s) => s.locked)) {
    const lost = (results.get(server.name, 'lost increments')?.runs ?? []).reduce((a, b) => a + Math.abs(b), 0);
    results.target(
      `http: ${server.name}, lock on every request, 0 lost`,
      `${lost} lost in ${ROUNDS} rounds`,
      lost === 0,
    );
  }
  const ratios = results.pairedRatios('Express + sessionlock dbm', `Express + ${PEER_NAME.FileStore}`, 'req/s');
  if (ratios) {
    const row = results.add('Express + sessionlock dbm', `ratio to Express + ${PEER_NAME.FileStore}`, '×', ratios);
    const medians = ['Express + sessionlock dbm', `Express + ${PEER_NAME.FileStore}`].map((s) =>
      formatNumber(results.get(s, 'req/s')?.value ?? Number.NaN),
    );
    results.target(
      `http: Express + sessionlock dbm ≥ 3× Express + ${PEER_NAME.FileStore} req/s`,
      `${formatRatio(row)} (medians ${medians.join(' vs ')} req/s)`,
      row.value >= 3,
    );
  }
  results.note(
    'sessionlock servers use the adapters with lock: true (the session is locked for the whole request) and a secret; express-session uses resave: false, saveUninitialized: false and the same secret.',
  );
  results.note(
    `Lost = 2xx responses minus the counter read afterwards. Each round sends ${quick ? `${QUICK_REQUESTS} requests (--quick: no warm-up)` : `about ${DURATION} s worth of requests (sized by a ${WARMUP} s warm-up)`} and waits for every response, so none is cut off. autocannon runs in the parent process, each server in its own.`,
  );
  results.write();
  fs.rmSync(dir, { recursive: true, force: true });
  const broken = servers.filter(
    (s) => s.locked && (results.get(s.name, 'lost increments')?.runs ?? []).some((v) => v !== 0),
  );
  if (broken.length > 0) fail(`sessionlock lost increments over HTTP: ${broken.map((s) => s.name).join(', ')}`);
}

runScenario(import.meta, main);
