import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { dir } from 'tmp-promise';
import { StorageError } from '../../lib/errors.js';
import { ensureDirectory, readWholeFile } from '../../lib/files.js';
import { type ChildRun, resultOf, runNode } from '../fixtures/processes.js';

const FILES = new URL('../../lib/files.ts', import.meta.url).href;
const POSIX = process.platform !== 'win32';
const NOBODY = 65_534;

/**
 * Runs `module` (ES module text, top-level await allowed, lib's TypeScript importable through
 * tsx) in a child `node` (see {@link runNode}: `shell` can set limits such as `ulimit -f`).
 */
function runModule(module: string, options: { shell?: string; uid?: number } = {}): Promise<ChildRun> {
  return runNode(['--input-type=module', '-e', module], options);
}

/** What a child reports of an error, or of a value. */
interface Outcome {
  ok?: unknown;
  name?: string;
  code?: string;
  message?: string;
  location?: string;
  cause?: string;
}

/** Module text defining `outcome(f)`: runs `f` and describes what it returned or threw. */
const OUTCOME = `
const outcome = (f) => {
  try {
    const ok = f();
    return { ok: Buffer.isBuffer(ok) ? ok.toString() : ok ?? null };
  } catch (e) {
    return { name: e.name, code: e.code, message: e.message, location: e.location, cause: e.cause?.code };
  }
};`;

describe('ensureDirectory', async () => {
  const scratch = await dir({ unsafeCleanup: true });
  after(() => scratch.cleanup());

  it('creates missing parents, reports whether it created anything, and accepts a directory that exists', () => {
    const nested = path.join(scratch.path, 'a', 'b', 'c');
    assert.equal(ensureDirectory(nested), true);
    assert.ok(fs.statSync(nested).isDirectory());
    assert.equal(ensureDirectory(nested), false);
  });

  it('throws StorageError, without hanging, where a parent refuses new entries or is a file', {
    skip: !fs.existsSync('/proc/self') && 'no procfs',
  }, () => {
    // Node's mkdirSync(…, { recursive: true }) loops forever on this one.
    assert.throws(() => ensureDirectory('/proc/sessionlock-test/dir'), StorageError);
    const file = path.join(scratch.path, 'file');
    fs.writeFileSync(file, '');
    assert.throws(() => ensureDirectory(path.join(file, 'dir')), StorageError);
  });
});

describe('readWholeFile', async () => {
  const scratch = await dir({ unsafeCleanup: true });
  after(() => scratch.cleanup());

  it('reads small and large files whole, each result its own copy', () => {
    const small = path.join(scratch.path, 'small');
    const large = path.join(scratch.path, 'large');
    fs.writeFileSync(small, 'x'.repeat(100));
    const bytes = Buffer.alloc(100_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
    fs.writeFileSync(large, bytes);

    const first = readWholeFile(small);
    assert.deepEqual(readWholeFile(large), bytes);
    assert.equal(readWholeFile(small)?.toString(), 'x'.repeat(100), 'a small file after a large one');
    assert.equal(first?.toString(), 'x'.repeat(100), 'a later read does not change an earlier result');
    fs.writeFileSync(small, '');
    assert.deepEqual(readWholeFile(small), Buffer.alloc(0));
  });

  it('gives undefined for a missing file and throws like fs for anything else', () => {
    assert.equal(readWholeFile(path.join(scratch.path, 'missing')), undefined);
    assert.throws(() => readWholeFile(scratch.path), { code: 'EISDIR' });
  });

  it('refuses a FIFO, a link to a device and any symbolic link, without blocking or reading them', {
    skip: !POSIX,
  }, async () => {
    const at = (name: string) => path.join(scratch.path, name);
    fs.writeFileSync(at('regular'), 'regular content');
    fs.symlinkSync('/dev/zero', at('zero-link'));
    fs.symlinkSync(at('regular'), at('regular-link'));
    execFileSync('mkfifo', [at('fifo')]);
    const results = resultOf<Record<string, Outcome>>(
      await runModule(`
        const { readWholeFile, openIfExists } = await import(${JSON.stringify(FILES)});
        ${OUTCOME}
        const read = (name) => outcome(() => readWholeFile(${JSON.stringify(scratch.path)} + '/' + name));
        const open = (name) => outcome(() => typeof openIfExists(${JSON.stringify(scratch.path)} + '/' + name));
        console.log(JSON.stringify({
          fifo: read('fifo'),
          zeroLink: read('zero-link'),
          regularLink: read('regular-link'),
          regular: read('regular'),
          openFifo: open('fifo'),
          openZeroLink: open('zero-link'),
          openRegularLink: open('regular-link'),
          openDevice: outcome(() => typeof openIfExists('/dev/zero')),
          openDirectory: open('.'),
        }));`),
    );
    assert.deepEqual(pick(results.fifo), { code: 'EFTYPE', message: 'it is a FIFO, not a regular file' });
    assert.deepEqual(pick(results.zeroLink), { code: 'ELOOP', message: 'it is a symbolic link, not a regular file' });
    assert.deepEqual(pick(results.regularLink), {
      code: 'ELOOP',
      message: 'it is a symbolic link, not a regular file',
    });
    assert.deepEqual(results.regular, { ok: 'regular content' });
    // openIfExists (the dbm backend's file check) refuses the same, and a device named directly
    assert.deepEqual(pick(results.openFifo), { code: 'EFTYPE', message: 'it is a FIFO, not a regular file' });
    for (const link of [results.openZeroLink, results.openRegularLink]) {
      assert.deepEqual(pick(link), { code: 'ELOOP', message: 'it is a symbolic link, not a regular file' });
    }
    assert.deepEqual(pick(results.openDevice), {
      code: 'EFTYPE',
      message: 'it is a character device, not a regular file',
    });
    assert.deepEqual(pick(results.openDirectory), { code: 'EISDIR', message: 'it is a directory, not a regular file' });
  });
});

describe('writing files', { skip: !POSIX }, async () => {
  const scratch = await dir({ unsafeCleanup: true });
  after(() => scratch.cleanup());
  let count = 0;
  /** A fresh directory holding `file` (with `content`) and an empty temporary directory. */
  const scene = (content: string) => {
    const home = path.join(scratch.path, `scene-${++count}`);
    const tempDir = path.join(home, '.tmp');
    fs.mkdirSync(tempDir, { recursive: true });
    const file = path.join(home, 'victim.json');
    fs.writeFileSync(file, content);
    return { home, tempDir, file };
  };

  it('writeFileAtomically: a write cut short (the file size limit) throws StorageError, and the old file stays', async () => {
    const { tempDir, file } = scene('old content');
    // Under `ulimit -f` the kernel writes up to the limit and returns a short count, and the
    // next write fails with EFBIG. The child ignores SIGXFSZ, which would otherwise end it
    // (proper-lockfile's signal-exit re-raises it).
    const results = resultOf<{ atomic: Outcome; renamed: boolean; overwrite: Outcome }>(
      await runModule(
        `
        process.on('SIGXFSZ', () => {});
        const { writeFileAtomically, overwriteFileAt } = await import(${JSON.stringify(FILES)});
        ${OUTCOME}
        const file = ${JSON.stringify(file)};
        let renamed = false;
        const atomic = outcome(() => writeFileAtomically(file, Buffer.alloc(1 << 20, 'n'), {
          tempDir: ${JSON.stringify(tempDir)},
          durable: false,
          beforeRename: () => { renamed = true; },
        }));
        const overwrite = outcome(() => overwriteFileAt(file + '.slots', 0, Buffer.alloc(1 << 20, 'n'), { durable: false }));
        console.log(JSON.stringify({ atomic, renamed, overwrite }));`,
        { shell: `ulimit -f 64 && : > ${JSON.stringify(`${file}.slots`)} &&` },
      ),
    );
    assert.deepEqual(pick(results.atomic, 'name', 'location', 'cause'), {
      name: 'StorageError',
      location: file,
      cause: 'EFBIG',
    });
    assert.equal(results.renamed, false, 'the truncated file is never renamed into place');
    assert.equal(fs.readFileSync(file, 'utf8'), 'old content');
    assert.deepEqual(fs.readdirSync(tempDir), [], 'the temporary file is removed');
    assert.deepEqual(pick(results.overwrite, 'name', 'cause'), { name: 'StorageError', cause: 'EFBIG' });
  });

  it('writeFileAtomically: a durable write whose directory cannot be fsynced throws StorageError naming it', async () => {
    // The directory can be written (the temporary file created and renamed) but not opened for
    // reading, which fsyncing it needs: root ignores permissions, so then the child runs as nobody.
    const root = process.getuid?.() === 0;
    fs.chmodSync(scratch.path, 0o711);
    const { home, tempDir, file } = scene('old content');
    if (root) for (const entry of [home, tempDir, file]) fs.chownSync(entry, NOBODY, NOBODY);
    fs.chmodSync(home, 0o333);
    try {
      const result = resultOf<Outcome>(
        await runModule(
          `
          const { writeFileAtomically } = await import(${JSON.stringify(FILES)});
          ${OUTCOME}
          console.log(JSON.stringify(outcome(() => writeFileAtomically(${JSON.stringify(file)}, Buffer.from('new content'), {
            tempDir: ${JSON.stringify(tempDir)},
            durable: true,
            beforeRename: () => {},
          }))));`,
          root ? { uid: NOBODY } : {},
        ),
      );
      assert.deepEqual(pick(result, 'name', 'location', 'cause'), {
        name: 'StorageError',
        location: home,
        cause: 'EACCES',
      });
      assert.match(result.message as string, /^Cannot fsync the directory /);
    } finally {
      fs.chmodSync(home, 0o700);
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'new content', 'the rename had happened: the new content is in place');
  });
});

function pick(outcome: Outcome | undefined, ...keys: (keyof Outcome)[]): Partial<Outcome> {
  const wanted = keys.length > 0 ? keys : (['code', 'message'] as const);
  return Object.fromEntries(wanted.map((key) => [key, outcome?.[key]]));
}
