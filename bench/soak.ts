/**
 * The long crash soak: `npm run soak` (or `tsx bench/soak.ts --seconds 60 --backend dbm`).
 * Four worker processes do locked increments on 50 sessions while a supervisor kills a random
 * worker with SIGKILL every 200–500 ms, for each backend; then every session is checked
 * against the workers' logs and the data directory for leftovers. Asserts data, not speed.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dir } from 'tmp-promise';
import { progressBar } from '../lib/demo/progress.js';
import { RedisNamespaceManager } from '../lib/index.js';
import { RedisServer } from '../spec/fixtures/redis-server.js';
import { runSoak } from '../spec/fixtures/soak.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '60' }, backend: { type: 'string', default: 'file,dbm,redis' } },
});
const seconds = Number(values.seconds);
const rows: string[] = [
  '| backend | seconds | kills | increments begun | resolved | cut off by SIGKILL | problems |',
  '| --- | --- | --- | --- | --- | --- | --- |',
];
let failed = false;

for (const type of String(values.backend).split(',')) {
  const data = await dir({ unsafeCleanup: true, prefix: `soak-${type}-` });
  const logs = await dir({ unsafeCleanup: true, prefix: 'soak-logs-' });
  const redis = type === 'redis' ? await RedisServer.start() : undefined;
  const storage: Record<string, string> = redis
    ? { url: redis.url, prefix: 'soak:' }
    : { dataDir: path.join(data.path, 'data') };
  const bar = progressBar(`soak ${type.padEnd(5)}`, seconds);
  try {
    const report = await runSoak({
      options: { type, key: 'soak', lockStale: 2000, ...storage },
      seconds,
      logDir: logs.path,
      onProgress: (elapsed) => bar.update(Math.min(seconds, Math.floor(elapsed))),
    });
    bar.finish(report.problems.length === 0 ? 'ok' : `${report.problems.length} problems`);
    for (const problem of report.problems.slice(0, 20)) console.log(`  ${problem}`);
    failed ||= report.problems.length > 0;
    rows.push(
      `| ${type} | ${seconds} | ${report.kills} | ${report.begun} | ${report.done} | ${report.begun - report.done} | ${report.problems.length} |`,
    );
  } finally {
    await RedisNamespaceManager.closeConnections();
    await redis?.stop();
    await logs.cleanup();
    await data.cleanup();
  }
}
console.log(`\n${rows.join('\n')}`);
process.exitCode = failed ? 1 : 0;
