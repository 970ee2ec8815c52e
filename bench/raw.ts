/**
 * Scenario `raw`: the machine's limits, measured in the same run as everything else, so each
 * result can be read as a fraction of what the storage underneath allows: fs write temp +
 * rename (with and without a read first, in place, and without replacing the file), LMDB get +
 * put synced one at a time and batched with 32 in flight, Redis GET + SET with ioredis,
 * proper-lockfile lock + release, and the O_EXCL lock file sessionlock uses instead of its directory.
 *
 *   tsx bench/raw.ts [--quick]
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Contender, formatNumber, interleave, quick, Results, runScenario, throughput } from './lib/harness.js';
import {
  exclusiveLockFile,
  fsReadOverwrite,
  fsReadWriteRename,
  fsReadWriteRenameAsync,
  fsWriteRename,
  fsWriteUnlinkRename,
  lmdbGetPutAsync,
  lmdbGetPutSync,
  properLockfile,
  RAW_SESSIONS,
  type RawOp,
  redisGetSet,
} from './lib/raw.js';
import { benchRedis, redisAvailable } from './lib/redis.js';
import { makeScratchDir, randomPicks } from './lib/systems.js';

const ROUNDS = quick ? 1 : 4;
const DURATION = quick ? 150 : 700;

async function main(): Promise<void> {
  const results = new Results('raw');
  const dir = makeScratchDir('raw');
  const redis = redisAvailable() ? await benchRedis() : undefined;
  const at = (name: string) => path.join(dir, name);

  const ops: { op: RawOp; modes: number[] }[] = [
    { op: fsWriteRename(at('fs-write')), modes: [1] },
    { op: fsWriteUnlinkRename(at('fs-unlink')), modes: [1] },
    { op: fsReadWriteRename(at('fs-read-write')), modes: [1] },
    { op: fsReadOverwrite(at('fs-overwrite')), modes: [1] },
    { op: fsReadWriteRenameAsync(at('fs-async')), modes: [1, 32] },
    { op: lmdbGetPutSync(at('lmdb-sync')), modes: [1] },
    { op: lmdbGetPutAsync(at('lmdb-async')), modes: [1, 32] },
    { op: lmdbGetPutAsync(at('lmdb-nosync'), true), modes: [32] },
    ...(redis ? [{ op: await redisGetSet(redis.url), modes: [1, 32] }] : []),
    { op: properLockfile(at('lockfile')), modes: [1] },
    { op: exclusiveLockFile(at('lock-file')), modes: [1] },
  ];
  const picks = randomPicks(1 << 16, RAW_SESSIONS);
  const contenders: Contender[] = ops.flatMap(({ op, modes }) =>
    modes.map((concurrency) => ({
      name: `${op.name} · ${concurrency}`,
      run: async () => {
        const run = await throughput((i) => op.op(picks[i & 0xffff] as number), { duration: DURATION, concurrency });
        return { 'ops/s': run.perSecond };
      },
    })),
  );
  const measured = await interleave('raw', contenders, ROUNDS);
  for (const { op, modes } of ops) {
    for (const concurrency of modes) {
      const runs = measured.get(`${op.name} · ${concurrency}`)?.get('ops/s') ?? [];
      results.add(op.name, concurrency === 1 ? 'ops/s 1 at a time' : 'ops/s 32 in flight', 'ops/s', runs);
    }
  }
  results.table(
    `The machine's limits: one ~500-byte session per operation, ${formatNumber(RAW_SESSIONS)} sessions (median of ${ROUNDS} rounds, min–max)`,
    ops.map(({ op }) => op.name),
    [
      { label: 'ops/s, 1 at a time', metric: 'ops/s 1 at a time' },
      { label: 'ops/s, 32 in flight', metric: 'ops/s 32 in flight' },
    ],
  );
  results.note(
    'fs: synchronous calls, as the file backend makes them (the async variant goes through libuv’s thread pool). LMDB: one file holding a key per session; putSync commits (and syncs) each put, put() batches concurrent puts into one synced commit. Redis: ioredis, one GET then one SET. proper-lockfile: realpath false, retries 0, its default mkdir lock directories; sessionlock’s FileLock runs it on O_EXCL lock files instead.',
  );
  results.write();
  for (const { op } of ops) await op.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

runScenario(import.meta, main);
