import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DirectoryResult, dir } from 'tmp-promise';
import { FileNamespaceManager } from '../../lib/index.js';
import { namespaceManagerConformance } from '../conformance/namespace-manager.suite.js';
import { TEST_LOCK_STALE } from '../fixtures/backends.js';
import { spawnWorker } from '../fixtures/processes.js';

namespaceManagerConformance('file');

describe('file backend: something other than a regular file at a namespace path', {
  skip: process.platform === 'win32',
}, () => {
  let tmp: DirectoryResult;
  let dataDir: string;
  before(async () => {
    tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-file-' });
    dataDir = path.join(tmp.path, 'data');
    fs.mkdirSync(dataDir);
  });
  after(() => tmp.cleanup());
  const manager = (namespace: string) => new FileNamespaceManager(namespace, { dataDir, lockStale: TEST_LOCK_STALE });

  it('a FIFO: taking the lock rejects with StorageError naming it, without blocking the process', async () => {
    const fifo = manager('fifo-namespace').file;
    execFileSync('mkfifo', [fifo]);
    // In a child process: opening a FIFO for reading used to block the whole process (its
    // event loop included) until a writer came. The child is killed if it blocks.
    const worker = spawnWorker({
      type: 'file',
      options: { dataDir, lockStale: TEST_LOCK_STALE },
      namespace: 'fifo-namespace',
      task: { kind: 'increment', count: 1, key: 'n' },
    });
    const kill = setTimeout(() => worker.kill('SIGKILL'), 60_000);
    try {
      await assert.rejects(worker.next('done'), {
        message: `worker failed: StorageError: Cannot read ${fifo}: it is a FIFO, not a regular file`,
      });
    } finally {
      clearTimeout(kill);
      worker.kill();
      await worker.exited;
    }
    assert.ok(fs.lstatSync(fifo).isFIFO(), 'the FIFO is left alone');
  });
});
