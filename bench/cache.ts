/**
 * Scenario `cache` (issue 8): what a cached value costs. A container `get` of a fresh value
 * (a read lock, the entry, an expiry check) against a plain read of the same key through the
 * backend's NamespaceManager, for every backend; the target is a cached get within 2× of the
 * raw read.
 *
 *   tsx bench/cache.ts [--quick]
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { Container, type ContainerOptions, createNamespaceManager, RedisNamespaceManager } from 'sessionlock';
import { type Contender, interleave, quick, Results, runScenario, throughput } from './lib/harness.js';
import { benchRedis, redisAvailable } from './lib/redis.js';
import { makeScratchDir, randomPicks } from './lib/systems.js';

const ROUNDS = quick ? 1 : 4;
const DURATION = quick ? 150 : 700;
const KEYS = 100;

async function main(): Promise<void> {
  const results = new Results('cache');
  const dir = makeScratchDir('cache');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const backends: [string, ContainerOptions][] = [
    ['memory', { type: 'memory' }],
    ['file', { type: 'file', dataDir: path.join(dir, 'file') }],
    ['dbm', { type: 'dbm', dataDir: path.join(dir, 'dbm') }],
    ...(redis
      ? [['redis', { type: 'redis', url: redis.url, prefix: 'bench-cache:' }] as [string, ContainerOptions]]
      : []),
  ];
  const picks = randomPicks(1 << 16, KEYS);
  const contenders: Contender[] = [];
  for (const [type, options] of backends) {
    const container = new Container('prices', { ...options, expiretime: 3600 });
    for (let key = 0; key < KEYS; key++) await container.set(`item-${key}`, { price: key, currency: 'EUR' });
    const { type: _type, expiretime: _expires, ...storage } = options;
    const raw = createNamespaceManager(type, 'prices', storage);
    const pick = (i: number) => `item-${picks[i & 0xffff]}`;
    contenders.push(
      {
        name: `${type} · cached get`,
        run: async () => ({
          'ops/s': (
            await throughput((i) => container.get(pick(i), { createfunc: () => ({ price: -1 }) }), {
              duration: DURATION,
              concurrency: 1,
            })
          ).perSecond,
        }),
      },
      {
        name: `${type} · raw read`,
        run: async () => ({
          'ops/s': (
            await throughput((i) => raw.withReadLock(() => raw.get(pick(i))), { duration: DURATION, concurrency: 1 })
          ).perSecond,
        }),
      },
    );
  }
  const measured = await interleave('cache', contenders, ROUNDS);
  for (const [type] of backends) {
    const cached = measured.get(`${type} · cached get`)?.get('ops/s') ?? [];
    const plain = measured.get(`${type} · raw read`)?.get('ops/s') ?? [];
    results.add(`${type} container`, 'cached get/s', 'ops/s', cached);
    results.add(`${type} container`, 'raw read/s', 'ops/s', plain);
    const cachedMedian = results.get(`${type} container`, 'cached get/s')?.value ?? 0;
    const plainMedian = results.get(`${type} container`, 'raw read/s')?.value ?? 0;
    const cost = plainMedian / cachedMedian;
    results.target(`cache: a cached get within 2× of a raw ${type} read`, `${cost.toFixed(2)}× the time`, cost <= 2);
  }
  results.table(
    `A fresh cached value against a plain read of the same key (median of ${ROUNDS} rounds, min–max)`,
    backends.map(([type]) => `${type} container`),
    [
      { label: 'cached get/s', metric: 'cached get/s' },
      { label: 'raw read/s (withReadLock + get)', metric: 'raw read/s' },
    ],
  );
  results.note('100 keys in one container; each get picks one at random. Values are fresh, so createfunc never runs.');
  results.write();
  await RedisNamespaceManager.closeConnections();
  await redis?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

runScenario(import.meta, main);
