/**
 * What sessionlock's errors and log lines disclose. Without a `secret`, a session id is the
 * cookie itself; error messages reach logs and error pages (Fastify's default error handler
 * sends them to the client, where a page script can read what the HttpOnly cookie hides).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { withDir } from 'tmp-promise';
import {
  jsonSerializer,
  LockTimeoutError,
  MemoryNamespaceManager,
  MemoryStore,
  SerializationError,
  Session,
  SessionCorruptError,
  StorageError,
} from '../../lib/index.js';

const requestWith = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } });

describe('disclosure in errors and logs', () => {
  it('shows a generated session id by its first 8 characters in error messages, whole in their properties', async () => {
    const session = await Session.open(requestWith(), { store: new MemoryStore() });
    const id = session.id;
    const timeout = new LockTimeoutError(id, 300, 'write');
    assert.equal(timeout.namespace, id);
    assert.ok(!timeout.message.includes(id), timeout.message);
    assert.match(timeout.message, new RegExp(`"${id.slice(0, 8)}…"`));
    const storage = new StorageError(`/var/sessions/${id}.json`, 'write', { cause: new Error(`EACCES: ${id}.json`) });
    assert.equal(storage.location, `/var/sessions/${id}.json`);
    assert.ok(!storage.message.includes(id), storage.message);
    // Loggers that copy an error's own enumerable properties (pino: Fastify's default) leave the id out.
    for (const error of [timeout, storage]) {
      const copied = JSON.stringify({ ...error });
      assert.ok(!copied.includes(id), copied);
    }
  });

  it("shortens generated session ids in the lines a Session and an adapter's options write to log", async () => {
    const store = new MemoryStore();
    const lines: string[] = [];
    const options = { store, timeout: 60, log: (line: string) => lines.push(line) };
    const session = await Session.open(requestWith(), options);
    session.data.n = 1;
    await session.save();
    const stored = new MemoryNamespaceManager(session.id, { store });
    await stored.withWriteLock(() => stored.set('#accessed', Date.now() - 3_600_000));
    await Session.open(requestWith(`sessionlock_id=${session.id}`), options);
    assert.ok(
      lines.some((line) => line.includes(`${session.id.slice(0, 8)}…`)),
      lines.join('\n'),
    );
    assert.ok(!lines.some((line) => line.includes(session.id)), lines.join('\n'));
  });

  it('keeps the stored text of a value that does not parse out of the error and its cause', async () => {
    const store = new MemoryStore();
    const session = await Session.open(requestWith(), { store });
    session.data.password = 'placeholder';
    await session.save();
    const stored = new MemoryNamespaceManager(session.id, { store });
    await stored.withWriteLock(() => stored.setEncoded('=password', null, 'hunter2-PASSWORD"'));
    const error = await Session.open(requestWith(`sessionlock_id=${session.id}`), { store }).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    assert.ok(error instanceof SessionCorruptError);
    const chain = [error.message, String((error as Error & { cause?: Error }).cause?.message)].join(' | ');
    assert.ok(!chain.includes('hunter2'), chain);
  });

  it('quotes a key that is no identifier in the path of a SerializationError (no raw newline or escape)', () => {
    const hostile = 'x\n2026-12-02T12:00:00Z INFO admin login ok\u001b[31m';
    assert.throws(
      () => jsonSerializer.stringify({ draft: { [hostile]: Number.POSITIVE_INFINITY } }),
      (error: Error) =>
        error instanceof SerializationError &&
        !error.message.includes('\n') &&
        !error.message.includes('\u001b') &&
        error.message.includes(`draft[${JSON.stringify(hostile)}]`),
    );
  });

  it('creates the directories it makes for dataDir readable by their owner only', async () => {
    await withDir(
      async ({ path: root }) => {
        const dataDir = path.join(root, 'sessions', 'file');
        const session = await Session.open(requestWith(), { type: 'file', dataDir });
        session.data.n = 1;
        await session.save();
        for (const dir of [path.join(root, 'sessions'), dataDir]) {
          assert.equal(fs.statSync(dir).mode & 0o777, 0o700, dir);
        }
      },
      { unsafeCleanup: true },
    );
  });

  it('shows neither a secret that is not a string nor the password of a Redis url in a TypeError', () => {
    assert.throws(
      () => new Session(requestWith(), { secret: 12345678 as unknown as string }),
      (error: Error) => error instanceof TypeError && !error.message.includes('12345678'),
    );
    assert.throws(
      () => new Session(requestWith(), { type: 'redis', url: 'redis://:S3cretPw@cache.internal:notaport' }),
      (error: Error) => error instanceof TypeError && !error.message.includes('S3cretPw'),
    );
  });
});
