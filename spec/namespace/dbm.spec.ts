import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { open } from 'lmdb';
import { type DirectoryResult, dir } from 'tmp-promise';
import { DBMNamespaceManager, SessionCorruptError, StorageError } from '../../lib/index.js';
import { dbmEnvironments } from '../../lib/namespace/dbm.js';
import {
  glibcMmapThresholdFloats,
  MMAP_THRESHOLD_WARNING,
  PINNED_MMAP_THRESHOLD,
} from '../../lib/namespace/glibc-malloc.js';
import { lmdbLockFile, lmdbOpenOptions } from '../../lib/namespace/lmdb-environments.js';
import { lmdbFileProblem } from '../../lib/namespace/lmdb-file-check.js';
import { newestCommit } from '../../lib/namespace/lmdb-transactions.js';
import { namespaceManagerConformance } from '../conformance/namespace-manager.suite.js';
import { TEST_LOCK_STALE } from '../fixtures/backends.js';
import { resultOf, runNode, spawnScript, spawnWorker } from '../fixtures/processes.js';

namespaceManagerConformance('dbm');

let dataDir: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ path: dataDir, cleanup } = await dir({ unsafeCleanup: true }));
});
after(async () => {
  await DBMNamespaceManager.closeFiles();
  await cleanup();
});

describe('dbm backend with damaged files', () => {
  const options = () => ({ dataDir, lockStale: TEST_LOCK_STALE });
  const create = (namespace: string) => new DBMNamespaceManager(namespace, options());

  /** A namespace of about 160 KB (40 pages), closed, its LMDB lock file gone as after a restart. */
  async function stored(namespace: string): Promise<string> {
    const ns = create(namespace);
    await ns.withWriteLock(() => {
      for (let i = 0; i < 200; i++) ns.set(`k${i}`, `${'v'.repeat(500)}${i}`);
    });
    await DBMNamespaceManager.closeFiles();
    fs.rmSync(lmdbLockFile(ns.file));
    return ns.file;
  }

  for (const size of [8192, 12288, 40960]) {
    it(`reports a file truncated to ${size} bytes as corrupt instead of crashing the reader (SIGBUS)`, async () => {
      const namespace = `truncated-${size}`;
      fs.truncateSync(await stored(namespace), size);
      const reader = spawnWorker({ type: 'dbm', options: options(), namespace, task: { kind: 'poll-read' } });
      reader.child.send('stop', () => {});
      await assert.rejects(reader.next('reads'), /worker failed: SessionCorruptError: .* is truncated/);
      await reader.exited;
    });
  }

  it('reads a file shorter than its last page when LMDB left pages it freed in a commit unwritten', async () => {
    const file = path.join(dataDir, 'short-but-whole.mdb');
    const db = open<string, string>(lmdbOpenOptions(file));
    let seed = 4; // with lmdb 3.5.6, commit 39 of this sequence leaves the file 4 KB short
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    let short = false;
    for (let commit = 0; commit < 200 && !short; commit++) {
      db.transactionSync(() => {
        for (let i = Math.floor(random() * 30); i >= 0; i--) {
          const key = `k${Math.floor(random() * 300)}`;
          if (random() < 0.45) db.removeSync(key);
          else
            db.putSync(key, JSON.stringify('v'.repeat(Math.floor(random() < 0.1 ? random() * 20000 : random() * 800))));
        }
      });
      short = (newestLastPage(file) + 1) * 4096 > fs.statSync(file).size;
    }
    const expected = [...db.getKeys({ start: '' })].length;
    await db.close();
    assert.ok(
      short,
      'a commit left the file shorter than its last page (else this recipe needs updating for the lmdb in use)',
    );
    assert.equal(lmdbFileProblem(file), undefined);
    const ns = create('short-but-whole');
    assert.equal(await ns.withReadLock(() => ns.keys().length), expected);
  });

  it('reports a file with intact meta pages but zeroed data pages as corrupt, on reading and on writing', async () => {
    const file = await stored('zeroed');
    const bytes = fs.readFileSync(file);
    bytes.fill(0, 2 * bytes.readUInt32LE(48));
    fs.writeFileSync(file, bytes);
    const ns = create('zeroed');
    await assert.rejects(
      ns.withReadLock(() => ns.keys()),
      (error: unknown) => error instanceof SessionCorruptError && /has a damaged page/.test(error.message),
    );
    await assert.rejects(ns.acquireWriteLock(), SessionCorruptError);
    assert.equal(ns.lockState, 'none');
  });

  /** The newest meta page's free-page and main trees: their roots and depths, and where the meta page is. */
  function trees(bytes: Buffer) {
    const pageSize = bytes.readUInt32LE(48);
    const txnid = (page: number) => bytes.readBigUInt64LE(page * pageSize + 48 + 2 * 48 + 8);
    const meta = (txnid(1) > txnid(0) ? 1 : 0) * pageSize;
    const tree = (offset: number) => ({
      depth: bytes.readUInt16LE(meta + offset + 6),
      root: Number(bytes.readBigUInt64LE(meta + offset + 40)),
      rootAt: meta + offset + 40,
    });
    return { pageSize, free: tree(48), main: tree(96) };
  }

  // Each of these crashed LMDB readers (SIGABRT on an assertion, SIGBUS) or read part of the data silently.
  const damages: [string, (bytes: Buffer) => void][] = [
    [
      'a zeroed root page',
      (bytes) => {
        const { pageSize, main } = trees(bytes);
        bytes.fill(0, main.root * pageSize, (main.root + 1) * pageSize);
      },
    ],
    [
      'node offsets past the end of the page',
      (bytes) => {
        const { pageSize, main } = trees(bytes);
        bytes.writeUInt16LE(0xfff0, main.root * pageSize + 24);
      },
    ],
    [
      'the main tree rooted at a page one level down',
      (bytes) => {
        const { pageSize, main } = trees(bytes);
        const child = bytes.readUInt32LE(main.root * pageSize + 24 + bytes.readUInt16LE(main.root * pageSize + 24));
        bytes.writeBigUInt64LE(BigInt(child), main.rootAt);
      },
    ],
    [
      'the free-page tree rooted at a page of data',
      (bytes) => {
        const { free, main } = trees(bytes);
        bytes.writeBigUInt64LE(BigInt(main.root), free.rootAt);
      },
    ],
  ];
  for (const [damage, apply] of damages) {
    it(`reports ${damage} as a damaged page before LMDB reads it`, async () => {
      const namespace = `damaged-${damages.findIndex(([name]) => name === damage)}`;
      const file = await stored(namespace);
      const bytes = fs.readFileSync(file);
      assert.ok(trees(bytes).main.depth >= 2, 'the namespace spans a branch page and its leaves');
      assert.equal(lmdbFileProblem(file), undefined);
      apply(bytes);
      fs.writeFileSync(file, bytes);
      assert.match(lmdbFileProblem(file) ?? '', /has a damaged page/);
      const ns = create(namespace);
      await assert.rejects(
        ns.withReadLock(() => ns.keys()),
        SessionCorruptError,
      );
    });
  }

  it('finds nothing wrong with files LMDB wrote: values of every size, overflow pages, deletions (60 checks)', async () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const file = path.join(dataDir, 'workload.mdb');
    let checked = 0;
    for (let round = 0; round < 20; round++) {
      const db = open<string, string>(lmdbOpenOptions(file));
      for (let commit = 0; commit < 12; commit++) {
        db.transactionSync(() => {
          for (let i = Math.floor(random() * 40); i >= 0; i--) {
            const key = `k${Math.floor(random() * 400)}`;
            if (random() < 0.4) db.removeSync(key);
            else db.putSync(key, 'v'.repeat(Math.floor(random() < 0.15 ? random() * 30000 : random() * 900)));
          }
        });
        if (commit % 6 === 5) {
          assert.equal(lmdbFileProblem(file), undefined, `round ${round}, commit ${commit}`);
          checked++;
        }
      }
      await db.close();
      assert.equal(lmdbFileProblem(file), undefined, `round ${round}, closed`);
      if (round % 5 === 4) for (const leftover of [file, lmdbLockFile(file)]) fs.rmSync(leftover);
    }
    assert.equal(checked, 40);
  });

  it('refuses meta pages of another LMDB format version, not marked as meta pages, or with main tree flags dbm never sets, before LMDB opens them', async () => {
    const file = await stored('meta-version');
    const bytes = fs.readFileSync(file);
    const pageSize = bytes.readUInt32LE(48);
    const versioned = Buffer.from(bytes);
    for (const page of [0, 1]) versioned.writeUInt32LE(99, page * pageSize + 28);
    fs.writeFileSync(file, versioned);
    assert.match(lmdbFileProblem(file) ?? '', /another LMDB file format version/);
    const unmarked = Buffer.from(bytes);
    unmarked.writeUInt16LE(0, pageSize + 18);
    fs.writeFileSync(file, unmarked);
    assert.match(lmdbFileProblem(file) ?? '', /damaged meta page/);
    const flagged = Buffer.from(bytes);
    for (const page of [0, 1]) flagged.writeUInt16LE(0xffff, page * pageSize + 24 + 24 + 48 + 4);
    fs.writeFileSync(file, flagged);
    assert.match(lmdbFileProblem(file) ?? '', /damaged meta page/, 'main tree flags dbm never sets');
    const ns = create('meta-version');
    await assert.rejects(
      ns.withReadLock(() => ns.keys()),
      SessionCorruptError,
    );
  });

  for (const kind of ['directory', 'symlink', 'fifo']) {
    it(`gives a StorageError, not a crash, for a ${kind} in place of LMDB's lock file`, {
      skip: process.platform === 'win32',
    }, async () => {
      const worker = fileURLToPath(new URL('../fixtures/dbm-lock-file-worker.ts', import.meta.url));
      const run = await runNode([worker, JSON.stringify({ dataDir, kind })]);
      const { error, message } = resultOf<{ error?: string; message?: string }>(run);
      assert.equal(error, 'StorageError');
      assert.match(message ?? '', /-lock: it is not a regular file/);
    });
  }

  it('gives a StorageError for a directory in place of the namespace file', async () => {
    const ns = create('a-directory');
    fs.mkdirSync(ns.file);
    await assert.rejects(
      ns.withReadLock(() => ns.keys()),
      (error: unknown) => error instanceof StorageError && (error.cause as NodeJS.ErrnoException).code === 'EISDIR',
    );
  });
});

describe('dbm backend when LMDB names an older commit as the newest', () => {
  const rewinder = fileURLToPath(new URL('../fixtures/lmdb-rewind.ts', import.meta.url));
  const fresh = (prefix: string) =>
    new DBMNamespaceManager(`${prefix}-${randomUUID()}`, { dataDir, lockStale: TEST_LOCK_STALE });

  /**
   * Sets the lock file's newest commit one back, from another process, and returns what a
   * plain LMDB write transaction then begins from and sees, and what a plain read snapshot sees.
   */
  async function rewind(
    file: string,
  ): Promise<{ newest: number; began: number; value: string | undefined; read: string | undefined }> {
    const handle = dbmEnvironments.acquire(file, { create: false, namespace: 'rewound' });
    assert.ok(handle);
    try {
      const newest = newestCommit(handle.db);
      const rewinding = spawnScript(rewinder, { lockFile: lmdbLockFile(file), from: newest, to: newest - 1 });
      await rewinding.next('done');
      await rewinding.exited;
      const { db } = handle;
      const [began, value] = db.transactionSync(() => [db.getWriteTxnId() - 1, db.get('n')] as const);
      db.resetReadTxn();
      return { newest, began, value, read: db.get('n') };
    } finally {
      dbmEnvironments.release(handle);
    }
  }

  const writes = [
    {
      name: 'under the write lock',
      write: (ns: DBMNamespaceManager) => ns.withWriteLock(() => ns.set('n', (ns.get('n') as number) + 1)),
      expected: { n: 3 },
    },
    {
      name: 'in applyChanges',
      write: (ns: DBMNamespaceManager) => ns.applyChanges(new Map([['m', 1]]), { requireKey: 'n' }),
      expected: { n: 2, m: 1 },
    },
  ];
  for (const { name, write, expected } of writes) {
    it(`keeps the newest commit ${name} after another process's open set LMDB's record of it back`, async () => {
      const ns = fresh('rewound');
      await ns.withWriteLock(() => ns.set('n', 1));
      await ns.withWriteLock(() => ns.set('n', 2));
      const { newest, began, value } = await rewind(ns.file);
      assert.equal(began, newest - 1, 'a plain write transaction now begins from the commit before the newest');
      assert.equal(value, JSON.stringify(1), '… and sees the value that commit had');
      await write(ns);
      const reader = new DBMNamespaceManager(ns.namespace, { dataDir });
      assert.deepEqual(
        await reader.withReadLock(() => Object.fromEntries(reader.keys().map((key) => [key, reader.get(key)]))),
        expected,
      );
    });
  }

  it("reads the newest commit without the lock after another process's open set LMDB's record of it back", async () => {
    const ns = fresh('rewound');
    await ns.withWriteLock(() => ns.set('n', 1));
    await ns.withWriteLock(() => ns.set('n', 2));
    const { read } = await rewind(ns.file);
    assert.equal(read, JSON.stringify(1), 'a plain read snapshot now sees the commit before the newest');
    const reader = new DBMNamespaceManager(ns.namespace, { dataDir });
    assert.equal(await reader.withReadLock(() => reader.get('n')), 2);
    assert.equal(await reader.withReadLock(() => reader.get('n')), 2, 'and again, from the reopened file');
  });

  it('reads a file whose commits carry no commit stamp (written before stamps existed), and stamps its next commit', async () => {
    const ns = fresh('unstamped');
    const db = open<string, string | number>(lmdbOpenOptions(ns.file));
    db.transactionSync(() => db.putSync('n', JSON.stringify(5)));
    db.transactionSync(() => db.putSync('m', JSON.stringify(6)));
    await db.close();
    assert.deepEqual(await ns.withReadLock(() => [ns.get('n'), ns.get('m')]), [5, 6]);
    await ns.withWriteLock(() => ns.set('n', 7));
    const reopened = open<string, string | number>(lmdbOpenOptions(ns.file));
    try {
      assert.equal(Number(reopened.get(0)), newestCommit(reopened), 'the commit carries its own id');
    } finally {
      await reopened.close();
    }
    assert.deepEqual(await ns.withReadLock(() => ns.keys().sort()), ['m', 'n']);
  });
});

describe('dbm backend while another process removes the namespace', () => {
  const worker = fileURLToPath(new URL('../fixtures/dbm-remove-race-worker.ts', import.meta.url));

  it('opens its file without crashing or failing while another process writes and removes it (3 rounds of 2.5 s)', async () => {
    for (let round = 0; round < 3; round++) {
      const raceDir = path.join(dataDir, `race-${round}`);
      const roles = ['writer', 'reader', 'reader'] as const;
      const workers = roles.map((role) => spawnScript(worker, { role, dataDir: raceDir, ms: 2500 }));
      const reports = await Promise.all(
        workers.map(async (w) => {
          const report = await w.next<{ rounds: number; errorCount: number; errors: string[] }>('done');
          await w.exited;
          return { ...report, signal: w.child.signalCode };
        }),
      );
      for (const [i, report] of reports.entries()) {
        assert.equal(report.signal, null, `${roles[i]} was killed by a signal`);
        assert.deepEqual(report.errors, [], `${roles[i]} met errors`);
        assert.ok(report.rounds > 0);
      }
    }
  });
});

describe('dbm backend when another process removes a namespace while a commit to it is under way', () => {
  const worker = fileURLToPath(new URL('../fixtures/dbm-late-commit-worker.ts', import.meta.url));
  let tmp: DirectoryResult;
  before(async () => {
    tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-dbm-late-' });
  });
  after(() => tmp.cleanup());

  for (const requireKey of [undefined, 'created']) {
    const outcome = requireKey ? 'resolves false (the namespace is gone)' : 'lands in a new file';
    it(`never acknowledges a commit lost with the removed file: an apply ${requireKey ? 'requiring a key ' : ''}${outcome}`, async () => {
      const dataDir = fs.mkdtempSync(path.join(tmp.path, 'data-'));
      const markers = fs.mkdtempSync(path.join(tmp.path, 'markers-'));
      const namespace = 'removedmidcommit';
      const ns = new DBMNamespaceManager(namespace, { dataDir, lockStale: 2000 });
      await ns.withWriteLock(() => ns.set('created', 1));
      const child = spawnScript(worker, { dataDir, namespace, markers, requireKey });
      while (!fs.existsSync(path.join(markers, 'in-transaction'))) await sleep(5);
      await ns.remove();
      fs.writeFileSync(path.join(markers, 'removed'), '');
      const { applied } = await child.next<{ applied: boolean }>('applied');
      await child.exited;
      const stored = await ns.withReadLock(() => ns.get('late'));
      if (requireKey) {
        assert.equal(applied, false);
        assert.equal(stored, undefined);
      } else {
        assert.equal(applied, true);
        assert.equal(stored, 'from the worker', 'an acknowledged commit is stored');
      }
      await DBMNamespaceManager.closeFiles();
    });
  }
});

describe('dbm backend when the process runs out of file descriptors', { skip: process.platform === 'win32' }, () => {
  const worker = fileURLToPath(new URL('../fixtures/dbm-descriptors-worker.ts', import.meta.url));

  // lmdb-js 3.5.6 crashed the process (a double free) when 1 or 2 were left for LMDB's own three.
  for (const free of [1, 2, 3, 4]) {
    const outcome = free < 4 ? 'gives a StorageError (EMFILE), not a crash' : 'succeeds';
    it(`with ${free} descriptor(s) left, opening a file ${outcome}; it works once they are back`, async () => {
      const input = { dataDir: path.join(dataDir, `descriptors-${free}`), free };
      const run = await runNode([worker, JSON.stringify(input)], { shell: 'ulimit -n 256 &&' });
      const error = free < 4 ? { name: 'StorageError', code: 'EMFILE' } : undefined;
      assert.deepEqual(resultOf(run), { ...(error ? { error } : {}), recovered: true });
    });
  }

  // Idle files in the cache kept their descriptors: with the default maxOpenFiles, nothing closed them.
  it('closes idle files when an open runs out, so that a pass one after another succeeds after a load', async () => {
    const limitWorker = fileURLToPath(new URL('../fixtures/dbm-descriptor-limit-worker.ts', import.meta.url));
    const input = { dataDir: path.join(dataDir, 'descriptor-limit'), count: 60 };
    const run = await runNode([limitWorker, JSON.stringify(input)], { shell: 'ulimit -n 96 &&' });
    assert.deepEqual(resultOf(run), { errors: {}, stored: 60 });
  });
});

describe('dbm backend with more namespaces in use at once than maxOpenFiles', () => {
  // Each file opened under its lock was evicted by the others' opens before the read used it.
  it('reads and increments 60 namespaces at once with room for 4 open files', async () => {
    const capacity = dbmEnvironments.capacity;
    const options = { dataDir: path.join(dataDir, 'crowded'), lockStale: TEST_LOCK_STALE, maxOpenFiles: 4 };
    const names = Array.from({ length: 60 }, (_, i) => `s${i}`);
    const count = async (name: string) => {
      const ns = new DBMNamespaceManager(name, options);
      return ns.withReadLock(() => ns.get('n'));
    };
    const increment = async (name: string) => {
      const ns = new DBMNamespaceManager(name, options);
      await ns.withWriteLock(() => ns.set('n', ((ns.get('n') as number | undefined) ?? 0) + 1));
    };
    try {
      for (const name of names) await increment(name);
      await DBMNamespaceManager.closeFiles();
      assert.deepEqual(
        await Promise.all(names.map(count)),
        names.map(() => 1),
      );
      await Promise.all(names.map(increment));
      assert.deepEqual(
        await Promise.all(names.map(count)),
        names.map(() => 2),
      );
    } finally {
      dbmEnvironments.capacity = capacity;
      await DBMNamespaceManager.closeFiles();
    }
  });
});

describe('dbm backend closing and opening a file in two processes at once', () => {
  const worker = fileURLToPath(new URL('../fixtures/dbm-close-race-worker.ts', import.meta.url));

  // LMDB's close destroys the lock file's mutexes when it finds no other process using the
  // file; an open refused the exclusive lock meanwhile then began no transaction at all.
  it('opens a file another process is just closing', async () => {
    const input = JSON.stringify({ dataDir: path.join(dataDir, 'close-race'), rounds: 150 });
    const runs = await Promise.all([runNode([worker, input]), runNode([worker, input])]);
    for (const run of runs) assert.deepEqual(resultOf(run), { failures: 0 });
  });
});

describe('dbm backend on glibc with a floating mmap threshold', { skip: !glibcMmapThresholdFloats({}) }, () => {
  const worker = fileURLToPath(new URL('../fixtures/dbm-evict-worker.ts', import.meta.url));
  const run = async (name: string, maxOpenFiles: number, env: string) => {
    const input = { dataDir: path.join(dataDir, `evict-${name}`), maxOpenFiles, count: 6 };
    const shell = `unset MALLOC_MMAP_THRESHOLD_ GLIBC_TUNABLES; ${env}`;
    return resultOf<{ codes: string[] }>(await runNode([worker, JSON.stringify(input)], { shell })).codes;
  };

  it('warns once, when the cache of open files starts evicting', async () => {
    assert.deepEqual(await run('floating', 2, ''), [MMAP_THRESHOLD_WARNING]);
  });

  it('does not warn while every file stays open', async () => {
    assert.deepEqual(await run('room', 64, ''), []);
  });

  it('does not warn when Node was started with the threshold pinned', async () => {
    assert.deepEqual(await run('pinned', 2, `MALLOC_MMAP_THRESHOLD_=${PINNED_MMAP_THRESHOLD}`), []);
    assert.deepEqual(
      await run('tunable', 2, `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=${PINNED_MMAP_THRESHOLD}`),
      [],
    );
  });
});

/** mm_last_pg of the meta page with the higher txnid (offsets of lmdb 3.5, 64-bit; see lmdb-file-check.ts). */
function newestLastPage(file: string): number {
  const bytes = fs.readFileSync(file);
  const txnid = (page: number) => bytes.readBigUInt64LE(page + 152);
  const pageSize = bytes.readUInt32LE(48);
  const newest = txnid(pageSize) > txnid(0) ? pageSize : 0;
  return Number(bytes.readBigUInt64LE(newest + 144));
}
