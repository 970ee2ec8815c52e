/**
 * The `sessionlock` command, end to end: built, spawned as `node dist/cli.js …` on real
 * file and dbm sessions made with the library, with a child process holding a lock.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DirectoryResult, dir } from 'tmp-promise';
import { TEMP_DIRECTORY } from '../../lib/files.js';
import { dbmEnvironments } from '../../lib/namespace/dbm.js';
import { FileNamespaceManager } from '../../lib/namespace/file.js';
import { TEST_LOCK_STALE } from '../fixtures/backends.js';
import { CLI, ensureBuilt, runCli, runCliWith } from '../fixtures/cli.js';
import { age, createSession, exists, type FileType, HOUR } from '../fixtures/data-dir.js';
import { spawnWorker } from '../fixtures/processes.js';

const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};

/** A user error is one line on stderr, without a stack trace. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  assert.match(stderr.trimEnd(), pattern);
  assert.equal(stderr.trimEnd().split('\n').length, 1, `one line expected, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

/**
 * Runs `node dist/cli.js ...args` like runCli, but kills it with SIGKILL if it has not
 * finished after a minute: a command stuck in a blocking system call (which SIGTERM does
 * not interrupt) then fails its test instead of hanging the suite.
 */
function runCliOrKill(args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const env = { ...process.env };
  delete env.SESSIONLOCK_DATA_DIR;
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env, timeout: 60_000, killSignal: 'SIGKILL' },
      (_error, _stdout, stderr) => resolve({ code: child.exitCode, signal: child.signalCode, stderr }),
    );
  });
}

const NOBODY = 65_534;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('sessionlock (CLI)', () => {
  let tmp: DirectoryResult;
  let count = 0;
  const freshDir = () => fs.mkdirSync(path.join(tmp.path, `data-${++count}`), { recursive: true }) as string;

  before(async () => {
    await ensureBuilt();
    tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-cli-' });
  });
  after(async () => {
    await dbmEnvironments.closeAll();
    await tmp.cleanup();
  });

  it('is the package bin', () => {
    assert.deepEqual(pkg.bin, { sessionlock: './dist/cli.js' });
    assert.match(fs.readFileSync(new URL('../../lib/cli.ts', import.meta.url), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  describe('--help', () => {
    it('lists the commands and common options', async () => {
      const { code, stdout, stderr } = await runCli(['--help']);
      assert.equal(code, 0);
      assert.equal(stderr, '');
      for (const text of [
        'Usage: sessionlock <command>',
        'list',
        'inspect <id>',
        'sweep --timeout',
        'demo',
        '--data-dir',
      ]) {
        assert.ok(stdout.includes(text), `${text} in:\n${stdout}`);
      }
      assert.equal((await runCli(['-h'])).stdout, stdout);
      assert.equal((await runCli(['help'])).stdout, stdout);
    });

    for (const [command, expected] of [
      ['list', /Usage: sessionlock list[\s\S]*--json/],
      ['inspect', /Usage: sessionlock inspect <id>/],
      ['sweep', /Usage: sessionlock sweep --timeout[\s\S]*--lock-stale[\s\S]*--dry-run/],
    ] as const) {
      it(`explains ${command}`, async () => {
        const { code, stdout } = await runCli([command, '--help']);
        assert.equal(code, 0);
        assert.match(stdout, expected);
        assert.match(stdout, /--data-dir <dir>/);
        assert.equal((await runCli(['help', command])).stdout, stdout);
      });
    }

    it('passes demo --help on to the demo', async () => {
      const { code, stdout } = await runCli(['demo', '--help']);
      assert.equal(code, 0);
      assert.match(stdout, /Usage: .*demo/);
    });

    it('reports a bad demo option in one line, with status 2', async () => {
      for (const args of [
        ['--requests', 'x'],
        ['--backend', 'redis'],
      ]) {
        const { code, stderr } = await runCli(['demo', ...args]);
        assert.equal(code, 2);
        assertOneLineError(stderr, /^sessionlock demo: --\w+ .*\(see sessionlock demo --help\)$/);
      }
    });

    it('removes its data directory when interrupted (SIGINT, SIGTERM)', async () => {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        const child = spawn(process.execPath, [CLI, 'demo', '--requests', '100000'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        const dataDir = await new Promise<string>((resolve, reject) => {
          child.stdout.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            const found = / sessions in (\S+)\n/.exec(output);
            if (found) resolve(found[1] as string);
          });
          child.once('exit', () => reject(new Error(`the demo ended before it started: ${output}`)));
        });
        assert.equal(await exists(dataDir), true);
        const exited = once(child, 'exit');
        child.kill(signal);
        const [code] = await exited;
        assert.equal(code, signal === 'SIGINT' ? 130 : 143);
        assert.equal(await exists(dataDir), false, `${signal}: ${dataDir} is removed`);
      }
    });

    it('prints the version', async () => {
      assert.deepEqual(await runCli(['--version']), { code: 0, stdout: `${pkg.version}\n`, stderr: '' });
    });
  });

  describe('list', () => {
    it('shows each session with its size in bytes and last access, as a table or JSON lines', async () => {
      const dataDir = freshDir();
      const sessions = {
        file: await createSession('file', dataDir, { user: 'ada' }),
        dbm: await createSession('dbm', dataDir, { user: 'bob' }),
      };
      const accessed = { file: new Date('2024-01-02T03:04:05.000Z'), dbm: new Date('2024-02-03T04:05:06.000Z') };
      for (const type of ['file', 'dbm'] as const) fs.utimesSync(sessions[type].file, accessed[type], accessed[type]);
      const size = (type: FileType) => fs.statSync(sessions[type].file).size;
      fs.writeFileSync(path.join(dataDir, 'package.json'), '{"name":"not-a-session"}');

      const table = await runCli(['list', '--data-dir', dataDir]);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split('\n');
      assert.match(lines[0] as string, /^LAST ACCESS \(UTC\)\s+BYTES\s+TYPE\s+ID$/);
      for (const type of ['file', 'dbm'] as const) {
        const row = lines.find((line) => line.endsWith(sessions[type].id));
        assert.ok(row, `a row for the ${type} session in:\n${table.stdout}`);
        assert.deepEqual(row.split(/\s+/), [accessed[type].toISOString(), String(size(type)), type, sessions[type].id]);
      }
      assert.equal(lines.at(-1), `2 sessions, ${size('file') + size('dbm')} bytes`);

      const json = await runCli(['list', '--json'], { SESSIONLOCK_DATA_DIR: dataDir });
      assert.equal(json.code, 0, json.stderr);
      const records = json.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line));
      assert.deepEqual(
        records.sort((a, b) => a.type.localeCompare(b.type)),
        (['dbm', 'file'] as const).map((type) => ({
          id: sessions[type].id,
          type,
          size: size(type),
          accessed: accessed[type].toISOString(),
          file: sessions[type].file,
        })),
      );

      const onlyFile = await runCli(['list', '--json', '--type', 'file', '-d', dataDir]);
      assert.deepEqual(
        onlyFile.stdout
          .trimEnd()
          .split('\n')
          .map((line) => JSON.parse(line).id),
        [sessions.file.id],
      );
    });

    it('list and sweep show a name with a newline or escape sequences escaped, never raw', async () => {
      const dataDir = freshDir();
      const names = ['line1\nFAKE  2020-01-01T00:00:00.000Z  0  file  forged', '\x1b[31mRED\x1b[0m\u202e'];
      for (const name of names) {
        const manager = new FileNamespaceManager(name, { dataDir });
        await manager.acquireWriteLock();
        manager.set('k', 'v');
        await manager.releaseWriteLock();
        await age(manager.file, 2 * HOUR);
      }
      const shown = ['"line1\\nFAKE  2020-01-01T00:00:00.000Z  0  file  forged"', '"\\u001b[31mRED\\u001b[0m\\u202e"'];
      const listed = await runCli(['list', '-d', dataDir]);
      const sweepLines = (await runCli(['sweep', '--timeout', '60', '--dry-run', '-d', dataDir])).stdout.split('\n');
      for (const output of [listed.stdout, ...sweepLines]) {
        assert.doesNotMatch(output, /^FAKE/m);
        assert.ok(!output.includes('\u001b') && !output.includes('\u202e'), output);
      }
      const rows = listed.stdout.trimEnd().split('\n').slice(1, -1);
      const idOf = (row: string) => row.slice(row.indexOf('  file  ') + '  file  '.length);
      assert.deepEqual(rows.map(idOf).sort(), [...shown].sort());
      for (const name of shown) {
        assert.ok(sweepLines.includes(`would remove session ${name} (file, 2048 bytes, idle 2 h 0 min)`), name);
      }
    });

    it('reports a session file it cannot read on stderr, lists the others, and exits 1', async () => {
      // Root reads any file: then the command runs as nobody, and the session files are root's.
      const root = process.getuid?.() === 0;
      fs.chmodSync(tmp.path, 0o711);
      const dataDir = freshDir();
      const [hidden, shown] = [await createSession('file', dataDir, {}), await createSession('file', dataDir, {})];
      fs.chmodSync(hidden.file, root ? 0o600 : 0o000);
      fs.chmodSync(shown.file, 0o644);
      // sessionlock makes its directories for its own user only (0700): open the one inside to nobody.
      fs.chmodSync(path.join(dataDir, '.tmp'), 0o755);
      const run = await runCliWith(['list', '-d', dataDir], root ? { uid: NOBODY } : {});
      assert.equal(run.code, 1);
      // The library shortens ids in messages; the command, an administrator's tool, shows the whole path.
      assertOneLineError(run.stderr, new RegExp(`^sessionlock list: Cannot read ${escapeRegExp(hidden.file)}: EACCES`));
      const lines = run.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 3, run.stdout);
      assert.ok(lines[1]?.endsWith(shown.id), run.stdout);
      assert.equal(lines[2], `1 session, ${fs.statSync(shown.file).size} bytes; 1 file could not be read`);
    });

    it('shows an empty directory as no sessions', async () => {
      const { code, stdout } = await runCli(['list', '-d', freshDir()]);
      assert.equal(code, 0);
      assert.match(stdout, /0 sessions, 0 bytes\n$/);
    });
  });

  describe('inspect', () => {
    for (const type of ['file', 'dbm'] as const) {
      it(`decodes a ${type} session: times, data and namespaces`, async () => {
        const dataDir = freshDir();
        const data = { user: 'ada', cart: [3, 14], since: new Date('2020-05-06T07:08:09.000Z') };
        const session = await createSession(type, dataDir, data, { prefs: { theme: 'dark' } });
        const { code, stdout, stderr } = await runCli(['inspect', session.id, '--data-dir', dataDir]);
        assert.equal(code, 0, stderr);
        const shown = JSON.parse(stdout);
        assert.equal(shown.id, session.id);
        assert.equal(shown.type, type);
        assert.equal(shown.file, session.file);
        assert.deepEqual(shown.data, { ...data, since: data.since.toISOString() });
        assert.deepEqual(shown.namespaces, { prefs: { theme: 'dark' } });
        assert.ok(Math.abs(Date.parse(shown.created) - Date.now()) < HOUR);
        assert.ok(Date.parse(shown.accessed) >= Date.parse(shown.created));
        assert.equal((await runCli(['inspect', session.id, '-d', dataDir, '--type', type])).stdout, stdout);
      });
    }

    it('decodes an encrypted session with the key in $SESSIONLOCK_ENCRYPT_KEY, and says it is encrypted without', async () => {
      for (const type of ['file', 'dbm'] as const) {
        const dataDir = freshDir();
        const [current, older] = ['the current key, long enough', 'an older key, long enough'];
        const session = await createSession(type, dataDir, { user: 'ada' }, {}, { encryptKey: older });
        const environment = { SESSIONLOCK_ENCRYPT_KEY: `${current}\n${older}` };
        const run = await runCli(['inspect', session.id, '-d', dataDir], environment);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(JSON.parse(run.stdout).data, { user: 'ada' });
        const keyless = await runCli(['inspect', session.id, '-d', dataDir]);
        assert.equal(keyless.code, 1);
        assertOneLineError(
          keyless.stderr,
          /^sessionlock inspect: .*is encrypted: set \$SESSIONLOCK_ENCRYPT_KEY to the encryptKey it was stored with/,
        );
        const short = await runCli(['inspect', session.id, '-d', dataDir], { SESSIONLOCK_ENCRYPT_KEY: 'short' });
        assert.equal(short.code, 2);
        assertOneLineError(
          short.stderr,
          /^sessionlock inspect: each key in SESSIONLOCK_ENCRYPT_KEY must have 16\+ characters/,
        );
      }
    });

    it('reports a FIFO or a link to a device in place of a session (exit 1) instead of blocking on it', {
      skip: process.platform === 'win32',
    }, async () => {
      const dataDir = freshDir();
      const at = (name: string) => path.join(dataDir, name);
      execFileSync('mkfifo', [at('fifosession000000.json'), at('fifosession000001.mdb')]);
      fs.symlinkSync('/dev/zero', at('zerosession000000.json'));
      fs.symlinkSync('/dev/zero', at('zerosession000001.mdb'));
      for (const name of [
        'fifosession000000.json',
        'fifosession000001.mdb',
        'zerosession000000.json',
        'zerosession000001.mdb',
      ]) {
        const run = await runCliOrKill(['inspect', name.replace(/\..*/, ''), '-d', dataDir]);
        assert.equal(run.signal, null, `inspect blocked on ${name} and was killed`);
        assert.equal(run.code, 1, run.stderr);
        assertOneLineError(
          run.stderr,
          new RegExp(`^sessionlock inspect: Cannot read ${escapeRegExp(at(name))}: it is .+, not a regular file$`),
        );
      }
      const fifo = await runCliOrKill(['inspect', 'fifosession000000', '-d', dataDir]);
      assert.match(fifo.stderr, /: it is a FIFO, not a regular file$/m);
      const link = await runCliOrKill(['inspect', 'zerosession000000', '-d', dataDir]);
      assert.match(
        link.stderr,
        /: it is a symbolic link, not a regular file$/m,
        'the file backend does not follow links',
      );

      for (const args of [['list'], ['sweep', '--timeout', '0']]) {
        const run = await runCliOrKill([...args, '-d', dataDir]);
        assert.equal(run.signal, null, `${args[0]} blocked`);
        assert.equal(run.code, 0, run.stderr);
      }
      for (const name of fs.readdirSync(dataDir)) assert.ok(!fs.lstatSync(at(name)).isFile(), `${name} was left alone`);
      assert.equal(fs.readdirSync(dataDir).length, 4);
    });

    it('reports an empty (never initialised) dbm file as no session, and leaves it untouched', async () => {
      const dataDir = freshDir();
      const id = 'abcdefghijklmnopqrstuvwxyz234567';
      const file = path.join(dataDir, `${id}.mdb`);
      fs.writeFileSync(file, '');
      await age(file, 2 * HOUR);
      const before = fs.statSync(file);
      for (const args of [[], ['--type', 'dbm']]) {
        const run = await runCli(['inspect', id, '-d', dataDir, ...args]);
        assert.equal(run.code, 1);
        assertOneLineError(run.stderr, new RegExp(`^sessionlock inspect: no session "${id}" in `));
      }
      const after = fs.statSync(file);
      assert.deepEqual([after.size, after.mtimeMs], [0, before.mtimeMs], 'inspect does not write to the file');
    });

    it('reports an unknown id (exit 1) and a missing id (exit 2)', async () => {
      const dataDir = freshDir();
      const unknown = await runCli(['inspect', 'nosuchsession0000', '-d', dataDir]);
      assert.equal(unknown.code, 1);
      assertOneLineError(unknown.stderr, /^sessionlock inspect: no session "nosuchsession0000" in /);
      const missing = await runCli(['inspect', '-d', dataDir]);
      assert.equal(missing.code, 2);
      assertOneLineError(missing.stderr, /^sessionlock inspect: missing <id> \(see sessionlock inspect --help\)$/);
    });
  });

  describe('sweep', () => {
    it('removes idle sessions and their lock files, keeps recent and locked ones, removes left-overs', async () => {
      const scene = await sweepScene(freshDir());
      try {
        await scene.holder.next('locked');
        await scene.age();
        const args = ['sweep', '--lock-stale', '2000', '-d', scene.dataDir];

        const dry = await runCli([...args, '--timeout', '1800', '--dry-run']);
        assert.equal(dry.code, 0, dry.stderr);
        const idleFile = scene.idle.file.id;
        assert.match(dry.stdout, new RegExp(`would remove session ${idleFile} \\(file, \\d+ bytes, idle 2 h 0 min\\)`));
        assert.match(dry.stdout, /^dry run of .*: would remove 2 of 4 sessions \(1 locked, 1 recent kept\)/m);
        for (const file of scene.leftOver) assert.ok(await exists(file), file);

        const { code, stdout, stderr } = await runCli([...args, '--timeout', '30m']);
        assert.equal(code, 0, stderr);
        assert.equal(stderr, '');
        assertSweepOutput(stdout, scene);
        for (const file of [...scene.leftOver, scene.idle.dbm.lock]) assert.equal(await exists(file), false, file);
        assert.ok(await exists(scene.recent.file));
        assert.ok(await exists(scene.locked.file), 'a locked session is never removed');
        assert.ok(await exists(scene.locked.lock), "the holder's lock is left alone");
      } finally {
        scene.holder.kill();
        await scene.holder.exited;
      }
    });

    it('accounts for every session in its summary, failed ones included', async () => {
      const dataDir = freshDir();
      const failing = await createSession('file', dataDir, { n: 1 });
      const idle = await createSession('file', dataDir, { n: 2 });
      for (const { file } of [failing, idle]) await age(file, 2 * HOUR);
      fs.mkdirSync(path.join(failing.lock, 'not-empty'), { recursive: true });
      await age(failing.lock, HOUR);
      const run = await runCli(['sweep', '--timeout', '60', '-d', dataDir]);
      assert.equal(run.code, 1);
      assert.match(
        run.stdout,
        /^swept .*: removed 1 of 2 sessions \(0 locked, 0 recent kept, 1 failed\); left-overs removed: 0 locks, 0 temporary files, 0 LMDB lock files, 1 failed$/m,
      );
      assert.match(run.stderr, new RegExp(`^sessionlock sweep: cannot sweep ${escapeRegExp(failing.file)}: `, 'm'));
    });

    it('prints JSON lines with --json', async () => {
      const dataDir = freshDir();
      const idle = await createSession('file', dataDir, { n: 1 });
      await age(idle.file, 2 * HOUR);
      const { code, stdout } = await runCli(['sweep', '--timeout', '60', '--json', '-d', dataDir]);
      assert.equal(code, 0);
      const [removal, summary, ...rest] = stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line));
      assert.deepEqual(rest, []);
      assert.equal(removal.removed.id, idle.id);
      assert.equal(removal.removed.kind, 'session');
      assert.equal(summary.summary.removed, 1);
      assert.equal(summary.summary.dataDir, dataDir);
    });
  });

  describe('output that cannot be written', () => {
    /** Idle file sessions, and (with `failing`) a stale lock directory the sweep cannot remove: a failed entry. */
    async function idleSessions(count: number, { failing = false } = {}) {
      const dataDir = freshDir();
      const files: string[] = [];
      for (let n = 0; n < count; n++) files.push((await createSession('file', dataDir, { n })).file);
      for (const file of files) await age(file, 2 * HOUR);
      if (failing) {
        const lock = path.join(dataDir, 'abandonedsession00.json.lock');
        fs.mkdirSync(path.join(lock, 'not-empty'), { recursive: true });
        await age(lock, HOUR);
      }
      return { dataDir, files, left: () => files.filter((file) => fs.existsSync(file)) };
    }

    it('sweep finishes when its reader goes away (| head), and exits 0 as the sweep succeeded', async () => {
      const scene = await idleSessions(5);
      const run = await runCliWith(['sweep', '--timeout', '60', '-d', scene.dataDir], { stdout: 'reader-gone' });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      assert.deepEqual(scene.left(), []);
    });

    it('sweep finishes on a stdout write error (ENOSPC), then exits 1 with one line on stderr', {
      skip: !fs.existsSync('/dev/full'),
    }, async () => {
      const scene = await idleSessions(5);
      const full = fs.openSync('/dev/full', 'w');
      try {
        const run = await runCliWith(['sweep', '--timeout', '60', '-d', scene.dataDir], { stdout: full });
        assert.equal(run.code, 1);
        assertOneLineError(run.stderr, /^sessionlock sweep: cannot write to stdout: ENOSPC: /);
      } finally {
        fs.closeSync(full);
      }
      assert.deepEqual(scene.left(), []);
    });

    it('sweep finishes when stderr cannot be written, and exits 1 without a crash', async () => {
      const scene = await idleSessions(5, { failing: true });
      const run = await runCliWith(['sweep', '--timeout', '60', '-d', scene.dataDir], { stderr: 'reader-gone' });
      assert.equal(run.code, 1);
      assert.match(run.stdout, /^swept .*, 1 failed$/m, 'the summary is printed');
      assert.deepEqual(scene.left(), []);
    });

    it('a usage error keeps exit status 2 when stderr cannot be written', async () => {
      const run = await runCliWith(['sweep', '-d', '.'], { stderr: 'reader-gone' });
      assert.equal(run.code, 2);
    });
  });

  describe('usage and runtime errors', () => {
    const cases: { args: string[]; code: number; message: RegExp; title?: string }[] = [
      { args: [], code: 2, message: /^sessionlock: missing command/ },
      {
        args: ['frobnicate'],
        code: 2,
        message: /^sessionlock: unknown command "frobnicate" \(see sessionlock --help\)$/,
      },
      {
        args: ['--data-dir', '.', 'list'],
        code: 2,
        message: /^sessionlock: unknown option "--data-dir" \(the command comes first/,
      },
      {
        args: ['list'],
        code: 2,
        message: /^sessionlock list: --data-dir <dir> is required \(or set SESSIONLOCK_DATA_DIR\)/,
      },
      {
        args: ['list', '--frob', '-d', '.'],
        code: 2,
        message: /^sessionlock list: unknown option --frob \(see sessionlock list --help\)$/,
      },
      { args: ['list', '-d'], code: 2, message: /^sessionlock list: option -d.* needs a value/ },
      {
        args: ['list', '--json=true', '-d', '.'],
        code: 2,
        message: /^sessionlock list: option --json does not take a value \(see sessionlock list --help\)$/,
      },
      {
        args: ['sweep', '-d', '.', '--timeout', '-1'],
        code: 2,
        message:
          /^sessionlock sweep: option --timeout needs a value; for one starting with a dash use '--timeout=-XYZ' \(see/,
      },
      { args: ['list', '-d', '.', 'extra'], code: 2, message: /^sessionlock list: unexpected argument "extra"/ },
      {
        args: ['list', '-d', '.', '--type', 'redis'],
        code: 2,
        message: /--type must be file or dbm, received "redis"/,
      },
      { args: ['sweep', '-d', '.'], code: 2, message: /^sessionlock sweep: --timeout <seconds> is required/ },
      { args: ['sweep', '-d', '.', '--timeout', 'soon'], code: 2, message: /--timeout must be seconds/ },
      {
        args: ['sweep', '-d', '.', '--timeout', `${'9'.repeat(400)}d`],
        title: 'sweep -d . --timeout 99…9d (400 nines: Infinity)',
        code: 2,
        message:
          /^sessionlock sweep: --timeout is too large to be a time; received "9{400}d" \(see sessionlock sweep --help\)$/,
      },
      {
        args: ['sweep', '-d', '.', '--timeout', `1${'0'.repeat(306)}`],
        title: 'sweep -d . --timeout 10…0 (1e306 s: Infinity ms)',
        code: 2,
        message: /^sessionlock sweep: --timeout is too large to be a time/,
      },
      {
        args: ['sweep', '-d', '.', '--timeout', '60', '--lock-stale', '5'],
        code: 2,
        message: /--lock-stale must be .* >= 2000/,
      },
      {
        args: ['sweep', '-d', '.', '--timeout', '60', '--lock-stale', '2147483648'],
        code: 2,
        message:
          /^sessionlock sweep: --lock-stale must be a number of milliseconds >= 2000 and <= 2147483647, received "2147483648"/,
      },
      { args: ['help', 'frobnicate'], code: 2, message: /unknown command "frobnicate"/ },
    ];
    for (const { args, code, message, title } of cases) {
      it(`sessionlock ${title ?? args.join(' ')} → exit ${code}`, async () => {
        const run = await runCli(args);
        assert.equal(run.code, code, run.stderr);
        assert.equal(run.stdout, '');
        assertOneLineError(run.stderr, message);
      });
    }

    for (const command of [['list'], ['inspect', 'somesession000000'], ['sweep', '--timeout', '60']]) {
      it(`${command[0]}: a missing data directory or a file instead → exit 1 naming the path`, async () => {
        const missing = path.join(tmp.path, 'no-such-dir');
        const run = await runCli([...command, '--data-dir', missing]);
        assert.equal(run.code, 1);
        assertOneLineError(
          run.stderr,
          new RegExp(`^sessionlock ${command[0]}: Cannot read the data directory ${missing}: it does not exist$`),
        );
        const file = path.join(tmp.path, 'a-file');
        fs.writeFileSync(file, '');
        const notDir = await runCli([...command], { SESSIONLOCK_DATA_DIR: file });
        assert.equal(notDir.code, 1);
        assertOneLineError(notDir.stderr, /Cannot read the data directory .*a-file: it is not a directory$/);
      });
    }
  });
});

/**
 * Idle file and dbm sessions (the file one with a dead holder's lock), a recent one, an idle
 * one locked by a live child process, a lock without a session and a temporary file.
 */
async function sweepScene(dataDir: string) {
  const idle = {
    file: await createSession('file', dataDir, { n: 1 }),
    dbm: await createSession('dbm', dataDir, { n: 2 }),
  };
  const recent = await createSession('file', dataDir, { n: 3 });
  const locked = await createSession('dbm', dataDir, { n: 4 });
  const holder = spawnWorker({
    type: 'dbm',
    options: { dataDir, lockStale: TEST_LOCK_STALE },
    namespace: locked.id,
    task: { kind: 'hold' },
  });
  const orphanLock = path.join(dataDir, 'abandonedsession00.json.lock');
  const orphanTemp = path.join(dataDir, TEMP_DIRECTORY, `${path.basename(recent.file)}.0123456789ab.tmp`);
  const foreign = path.join(dataDir, 'package.json');
  const leftOver = [orphanLock, orphanTemp, idle.file.file, idle.file.lock, idle.dbm.file, `${idle.dbm.file}-lock`];
  return {
    dataDir,
    idle,
    recent,
    locked,
    holder,
    orphanLock,
    orphanTemp,
    /** Another program's file with a session's name: the sweep leaves it alone. */
    foreign,
    /** What the sweep removes: left-over files, and the idle sessions' files (data, LMDB lock, dead holder's lock). */
    leftOver,
    /** Creates the left-overs and sets the times: call it once the holder has the lock. */
    async age() {
      fs.mkdirSync(idle.file.lock);
      fs.mkdirSync(orphanLock);
      fs.writeFileSync(orphanTemp, '{"partial');
      fs.writeFileSync(foreign, '{"name":"not-a-session"}');
      for (const file of [idle.file.lock, orphanLock, orphanTemp]) await age(file, 2 * TEST_LOCK_STALE);
      for (const file of [idle.file.file, idle.dbm.file, locked.file, foreign]) await age(file, 2 * HOUR);
    },
  };
}

function assertSweepOutput(stdout: string, scene: Awaited<ReturnType<typeof sweepScene>>): void {
  const lines = stdout.trimEnd().split('\n');
  for (const { id } of Object.values(scene.idle)) {
    assert.equal(lines.filter((line) => line.startsWith(`removed session ${id} `)).length, 1, stdout);
  }
  const removedLeftOver = (kind: string, file: string) =>
    lines.some((line) => line.startsWith(`removed ${kind} ${path.basename(file)} `));
  assert.ok(removedLeftOver('lock', scene.orphanLock), stdout);
  assert.ok(removedLeftOver('temp', scene.orphanTemp), stdout);
  assert.doesNotMatch(stdout, new RegExp(`session (${scene.recent.id}|${scene.locked.id}|package)`));
  assert.ok(fs.existsSync(scene.foreign), 'the foreign file is left alone');
  assert.match(
    lines.at(-1) as string,
    /^swept .*: removed 2 of 4 sessions \(1 locked, 1 recent kept\); 1 file that is not sessionlock's left alone; left-overs removed: [12] locks?, 1 temporary file, 0 LMDB lock files$/,
  );
}
