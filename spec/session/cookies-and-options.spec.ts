/** Session behaviour that does not depend on the backend: cookies, ids and options. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { dir } from 'tmp-promise';
import { cookieValues, serializeCookie } from '../../lib/cookie.js';
import {
  DBMNamespaceManager,
  MemoryNamespaceManager,
  MemoryStore,
  Session,
  type SessionOptions,
} from '../../lib/index.js';
import { UNKNOWN_OPTION_WARNING } from '../../lib/options.js';
import { generateSessionId, IdSigner } from '../../lib/session-id.js';

async function savedCookie(options: SessionOptions): Promise<string> {
  const session = await Session.open({ headers: {} }, options);
  session.data.x = 1;
  await session.save();
  return session.cookieHeader as string;
}

describe('Set-Cookie', () => {
  const base = (): SessionOptions => ({ store: new MemoryStore(), key: 'sid' });

  it('has safe defaults: Path=/, HttpOnly, SameSite=Lax, a browser-session cookie', async () => {
    const header = await savedCookie(base());
    assert.match(header, /^sid=[a-z2-7]{32}; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  it('follows cookieExpires: false (far future), a Date, a number of seconds', async () => {
    assert.match(await savedCookie({ ...base(), cookieExpires: false }), /; Expires=Fri, 31 Dec 9999 23:59:59 GMT;/);
    const when = new Date('2030-01-02T03:04:05Z');
    assert.match(await savedCookie({ ...base(), cookieExpires: when }), /; Expires=Wed, 02 Jan 2030 03:04:05 GMT;/);
    const relative = await savedCookie({ ...base(), cookieExpires: 3600 });
    assert.match(relative, /; Max-Age=3600; Expires=/);
    const expires = Date.parse(/Expires=([^;]+)/.exec(relative)?.[1] ?? '');
    assert.ok(Math.abs(expires - (Date.now() + 3600_000)) < 5000);
  });

  it('carries cookiePath, cookieDomain, secure, httpOnly, sameSite and partitioned', async () => {
    const header = await savedCookie({
      ...base(),
      cookiePath: '/app',
      cookieDomain: 'example.com',
      secure: true,
      httpOnly: false,
      sameSite: 'None',
      partitioned: true,
    });
    assert.match(header, /^sid=[a-z2-7]{32}; Domain=example\.com; Path=\/app; Secure; SameSite=None; Partitioned$/);
  });

  it('renews a rolling (seconds) cookie when the session is written, and not otherwise', async () => {
    const options = { ...base(), cookieExpires: 3600, accessResolution: 3600 };
    const cookie = (await savedCookie(options)).split(';')[0] as string;
    const readOnly = await Session.open({ headers: { cookie } }, options);
    assert.equal(readOnly.cookieHeader, undefined);
    readOnly.data.y = 2;
    await readOnly.save();
    assert.match(readOnly.cookieHeader ?? '', /Max-Age=3600/);
  });

  it('signs ids when a secret is given, and sends nothing without useCookies', async () => {
    assert.match(await savedCookie({ ...base(), secret: 's3cret' }), /^sid=[a-z2-7]{32}\.[A-Za-z0-9_-]{43};/);
    const session = await Session.open(undefined, { ...base(), useCookies: false });
    session.data.x = 1;
    await session.save();
    assert.equal(session.cookieHeader, undefined);
  });
});

describe('cookie parsing and ids', () => {
  it('finds every value of a cookie among others, tolerating junk, quotes and arrays', () => {
    assert.deepEqual(cookieValues('a=1; sid=x; b=2; sid="y"', 'sid'), ['x', 'y']);
    assert.deepEqual(cookieValues(['a=1', 'sid=z'], 'sid'), ['z']);
    assert.deepEqual(cookieValues(';;=;sid;sidx=1; sid =w', 'sid'), ['w']);
    assert.deepEqual(cookieValues(undefined, 'sid'), []);
    assert.equal(cookieValues(Array(100).fill('sid=a').join(';'), 'sid').length, 4, 'at most 4 candidates');
  });

  it('refuses to serialise what would break the header', () => {
    assert.throws(() => serializeCookie('bad name', 'v'), TypeError);
    assert.throws(() => serializeCookie('sid', 'a;b'), TypeError);
    assert.throws(() => serializeCookie('sid', 'v', { path: '/a;Secure' }), TypeError);
  });

  it('generates distinct 160-bit base32 ids and verifies signatures only with a known secret', () => {
    const ids = new Set(Array.from({ length: 1000 }, generateSessionId));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[a-z2-7]{32}$/);
    const signer = new IdSigner(['new', 'old']);
    const id = generateSessionId();
    assert.deepEqual(signer.verify(signer.sign(id)), { ok: true, id, stale: false });
    assert.deepEqual(new IdSigner(['old']).verify(new IdSigner(['new']).sign(id)).ok, false);
    assert.deepEqual(signer.verify(new IdSigner(['old']).sign(id)), { ok: true, id, stale: true });
    assert.equal(signer.verify(`${id}.`).ok, false);
    assert.equal(signer.verify('x'.repeat(10_000)).ok, false);
  });
});

describe('Session options', () => {
  it("uses 'dbm' when dataDir is given and 'memory' otherwise", async () => {
    const { path: dataDir, cleanup } = await dir({ unsafeCleanup: true });
    try {
      const onDisk = await Session.open({ headers: {} }, { dataDir });
      onDisk.data.x = 1;
      await onDisk.save();
      assert.ok(fs.existsSync(path.join(dataDir, `${onDisk.id}.mdb`)));
      const inMemory = await Session.open({ headers: {} }, {});
      inMemory.data.x = 1;
      await inMemory.save();
      const stored = new MemoryNamespaceManager(inMemory.id);
      assert.equal(await stored.withReadLock(() => stored.get('=x')), 1);
      assert.ok(new DBMNamespaceManager('x', { dataDir }) instanceof DBMNamespaceManager);
    } finally {
      await cleanup();
    }
  });

  it('warns once for each option nothing takes, naming the closest known one, and not for known options', async () => {
    const warnings: string[] = [];
    const listen = (warning: Error & { code?: string }) => {
      if (warning.code === UNKNOWN_OPTION_WARNING) warnings.push(warning.message);
    };
    process.on('warning', listen);
    try {
      const { path: dataDir, cleanup } = await dir({ unsafeCleanup: true });
      const typo = { secrets: 'a secret', timeout: 60 } as SessionOptions;
      await Session.open({ headers: {} }, typo);
      await Session.open({ headers: {} }, typo);
      await Session.open({ headers: {} }, {
        type: 'file',
        dataDir,
        durabel: true,
        sessionTimeout: 1,
      } as SessionOptions);
      new DBMNamespaceManager('x', { dataDir, maxOpenFiles: 600, lockStale: 5000, encryptKey: 'k'.repeat(16) });
      await Session.open({ headers: {} }, { type: 'memory', secret: 's', sameSite: 'Strict', timeout: 60 });
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, [
        'sessionlock: unknown option "secrets" is ignored (did you mean "secret"?)',
        'sessionlock: unknown option "durabel" is ignored (did you mean "durable"?)',
        'sessionlock: unknown option "sessionTimeout" is ignored',
      ]);
      await cleanup();
    } finally {
      process.off('warning', listen);
    }
  });

  it('rejects bad options with a TypeError naming the option and the value', () => {
    const cases: [SessionOptions, RegExp][] = [
      [{ type: 'nope' }, /type must be one of 'memory', 'file', 'dbm'.*received "nope"/],
      [{ timeout: -1 }, /timeout must be a number >= 0, received -1/],
      [{ key: 'a b' }, /key must be a valid cookie name, received "a b"/],
      [{ secret: [] }, /secret must be a non-empty string/],
      [{ sameSite: 'None' }, /secure: true/],
      [{ cookieExpires: 'tomorrow' as unknown as number }, /cookieExpires must be .*, received "tomorrow"/],
      [{ cookieExpires: 0 }, /cookieExpires must be .* seconds > 0, received 0/],
      [{ cookiePath: '/a;b' }, /cookiePath cannot be used/],
      [{ id: '../x' }, /id must be 16-128 .*, received "..\/x"/],
      [{ lockTimeout: Number.NaN }, /lockTimeout must be a number/],
      [{ lockStale: 2 ** 31 }, /lockStale must be a number >= 1 and <= 2147483647/],
      [
        { namespaceClass: 'x' as unknown as SessionOptions['namespaceClass'] } as SessionOptions,
        /namespaceClass must be a NamespaceManager class, received "x"/,
      ],
      [{ serializer: 5 as never }, /serializer must have .*, received 5/],
      [{ type: 'memory', store: {} } as SessionOptions, /store must be a MemoryStore, received an object/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => new Session(undefined, options).load(),
        (e: unknown) => e instanceof TypeError && message.test(e.message),
      );
    }
  });
});
