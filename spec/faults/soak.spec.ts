/**
 * The short crash soak (the long one is `npm run soak`): SIGKILL at random while four
 * processes increment 50 sessions under lock. A save that resolved is never lost, one that
 * did not is never half-applied, no lock outlives lockStale, nothing is left behind.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dir } from 'tmp-promise';
import { type BackendFixture, type BackendType, createFixture } from '../fixtures/backends.js';
import { runSoak } from '../fixtures/soak.js';

for (const type of ['file', 'dbm', 'redis'] as BackendType[]) {
  describe(`crash soak: ${type}`, () => {
    let backend: BackendFixture;
    let logs: { path: string; cleanup: () => Promise<void> };
    before(async () => {
      backend = await createFixture(type);
      logs = await dir({ unsafeCleanup: true });
    });
    after(async () => {
      await logs.cleanup();
      await backend.cleanup();
    });

    it('keeps every resolved save and half-applies none while workers are killed with SIGKILL', async () => {
      const options = { ...backend.options, type, key: 'soak' };
      const report = await runSoak({ options, seconds: 8, logDir: path.join(logs.path) });
      assert.deepEqual(report.problems, []);
      assert.ok(report.kills >= 10, `${report.kills} kills`);
      assert.ok(report.done > 0, 'workers made progress between kills');
    });
  });
}
