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

  it('follows cookieExpires: false (400 days, the most browsers keep), a Date, a number of seconds', async () => {
    assert.match(await savedCookie({ ...base(), cookieExpires: false }), /; Max-Age=34560000; Expires=/);
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

  it('renews a rolling cookie (seconds, or false) on every response of a stored session, read-only ones too', async () => {
    for (const cookieExpires of [3600, false]) {
      const options = { ...base(), cookieExpires, accessResolution: 3600 };
      const cookie = (await savedCookie(options)).split(';')[0] as string;
      const readOnly = await Session.open({ headers: { cookie } }, options);
      assert.equal(readOnly.modified, false);
      assert.match(readOnly.cookieHeader ?? '', /Max-Age=\d+; Expires=/, `cookieExpires ${cookieExpires}`);
    }
    const fixed = { ...base(), cookieExpires: new Date('2030-01-02T03:04:05Z') };
    const cookie = (await savedCookie(fixed)).split(';')[0] as string;
    assert.equal(
      (await Session.open({ headers: { cookie } }, fixed)).cookieHeader,
      undefined,
      'a fixed expiry is sent once',
    );
    const fresh = await Session.open({ headers: {} }, { ...base(), cookieExpires: 3600 });
    assert.equal(fresh.cookieHeader, undefined, 'nothing for a session that is not stored');
  });

  it('sends whole seconds in Max-Age, at most 400 days, with an Expires that agrees', async () => {
    assert.match(await savedCookie({ ...base(), cookieExpires: 0.5 }), /; Max-Age=1; /);
    for (const seconds of [1e13, 1e21]) {
      const header = await savedCookie({ ...base(), cookieExpires: seconds });
      assert.match(header, /; Max-Age=34560000; /);
      const expires = Date.parse(/Expires=([^;]+)/.exec(header)?.[1] ?? '');
      assert.ok(Math.abs(expires - (Date.now() + 34_560_000_000)) < 5000, header);
    }
  });

  it('refuses cookie options that browsers would drop the cookie for', () => {
    const cases: [SessionOptions, RegExp][] = [
      [{ key: '__Secure-sid' }, /"__Secure-sid" needs secure: true/],
      [{ key: '__secure-sid' }, /needs secure: true/],
      [{ key: '__Host-sid' }, /"__Host-sid" needs secure: true, cookiePath '\/' and no cookieDomain/],
      [{ key: '__Host-sid', secure: true, cookiePath: '/app' }, /cookiePath '\/'/],
      [{ key: '__HOST-sid', secure: true, cookieDomain: 'example.com' }, /no cookieDomain/],
      [{ cookiePath: 'admin' }, /cookiePath must start with '\/', received "admin"/],
      [{ cookieDomain: 'example.com:8080' }, /cookieDomain must be a host name without port or path/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => new Session(undefined, { ...base(), ...options }),
        (e: unknown) => e instanceof TypeError && message.test(e.message),
        JSON.stringify(options),
      );
    }
    assert.match(String(new Session(undefined, { ...base(), key: '__Secure-sid', secure: true }).key), /__Secure-sid/);
    new Session(undefined, { ...base(), key: '__Host-sid', secure: true });
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
    assert.equal(cookieValues(Array(100).fill('sid=a').join(';'), 'sid').length, 64, 'at most 64 values');
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

describe('which cookie a load adopts', () => {
  const base = (): SessionOptions => ({ store: new MemoryStore(), key: 'sid' });
  const pairOf = (header: string | undefined) => (header ?? '').split(';')[0] as string;

  it('loads the stored session behind malformed or badly signed cookies of the same name', async () => {
    const options = { ...base(), secret: 'k'.repeat(32) };
    const stored = pairOf(await savedCookie(options));
    const junk = ['sid=junk0', 'sid=../x', `sid=${generateSessionId()}.AAAA`, 'sid=', 'sid=junk4', 'sid=junk5'];
    const session = await Session.open({ headers: { cookie: [...junk, stored].join('; ') } }, options);
    assert.equal(session.isNew, false);
    assert.equal(session.data.x, 1);
  });

  it('finds the cookie after 17 KB of other cookies, on a server that accepts such headers', async () => {
    const options = base();
    const stored = pairOf(await savedCookie(options));
    const others = Array.from({ length: 170 }, (_, i) => `other${i}=${'v'.repeat(95)}`).join('; ');
    assert.ok(others.length > 17_000);
    const session = await Session.open({ headers: { cookie: `${others}; ${stored}` } }, options);
    assert.equal(session.isNew, false);
  });

  it('goes on to the next cookie after a timed-out one, and says the first was invalidated', async () => {
    const options = { ...base(), timeout: 60 };
    const live = pairOf(await savedCookie(options));
    const old = pairOf(await savedCookie(options));
    const oldId = old.slice('sid='.length);
    const manager = new MemoryNamespaceManager(oldId, { store: options.store as MemoryStore });
    await manager.withWriteLock(() => manager.set('#accessed', Date.now() - 3_600_000));
    const session = await Session.open({ headers: { cookie: `${old}; ${live}` } }, options);
    assert.equal(session.isNew, false);
    assert.equal(session.id, live.slice('sid='.length));
    assert.equal(session.wasInvalidated, true);
    assert.equal(session.cookieHeader, undefined, "the browser's live cookie is right");
    await manager.withReadLock(() => assert.deepEqual(manager.keys(), [], 'the timed-out one is removed'));
  });

  it('clears the cookie on invalidate() also when the browser signed it with an older secret', async () => {
    const store = new MemoryStore();
    const old = pairOf(await savedCookie({ store, key: 'sid', secret: 'old-secret-0123456789' }));
    const rotated = { store, key: 'sid', secret: ['new-secret-0123456789', 'old-secret-0123456789'] };
    const session = await Session.open({ headers: { cookie: old } }, rotated);
    assert.equal(session.isNew, false, 'the old secret still verifies');
    assert.match(session.cookieHeader ?? '', /^sid=[a-z2-7]{32}\./, 're-signed with the new secret');
    await session.invalidate();
    assert.match(session.cookieHeader ?? '', /^sid=; Max-Age=0; Expires=Thu, 01 Jan 1970/);
  });

  it('starts a new session for an id option that is not a session id, and logs why', async () => {
    for (const id of ['short', '', '../../etc/passwd', 'a'.repeat(200), 'x\0'.repeat(10)]) {
      const lines: string[] = [];
      const session = await Session.open({ headers: {} }, { ...base(), id, log: (line) => lines.push(line) });
      assert.equal(session.isNew, true);
      assert.notEqual(session.id, id);
      assert.match(lines.join('\n'), /rejected the id option: it is not a session id/);
    }
    const lax = await Session.open({ headers: {} }, { ...base(), id: '../x', strict: false });
    assert.match(lax.id, /^[a-z2-7]{32}$/, 'strict: false does not adopt it either');
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
      await Session.open({ headers: {} }, { name: 'sid', resave: false } as SessionOptions);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, [
        'sessionlock: unknown option "secrets" is ignored (did you mean "secret"?)',
        'sessionlock: unknown option "durabel" is ignored (did you mean "durable"?)',
        'sessionlock: unknown option "sessionTimeout" is ignored',
        'sessionlock: unknown option "name" is ignored (express-session\'s; here: "key")',
        'sessionlock: unknown option "resave" is ignored (express-session\'s; here: not needed: a save writes only the keys a request changed)',
      ]);
      await cleanup();
    } finally {
      process.off('warning', listen);
    }
  });

  it("expires the browser's cookie on invalidate() also when it named no stored session (a logout after another tab's)", async () => {
    const options = { key: 'sid', store: new MemoryStore() };
    const stale = await Session.open({ headers: { cookie: `sid=${generateSessionId()}` } }, options);
    assert.equal(stale.isNew, true);
    assert.equal(stale.cookieHeader, undefined, 'a load alone leaves the cookie be');
    await stale.invalidate();
    assert.match(stale.cookieHeader ?? '', /^sid=; .*Max-Age=0/);
    const fresh = await Session.open({ headers: {} }, options);
    await fresh.invalidate();
    assert.equal(fresh.cookieHeader, undefined, 'no cookie sent, none to expire');
  });

  it("throws a TypeError at once for express-session's callbacks, save(cb) and regenerate(cb), which would never be called", async () => {
    const session = await Session.open(undefined, { store: new MemoryStore() });
    const untyped = session as unknown as Record<'save' | 'regenerate', (callback: () => void) => unknown>;
    for (const method of ['save', 'regenerate'] as const) {
      assert.throws(
        () => untyped[method](() => {}),
        (e: unknown) =>
          e instanceof TypeError &&
          e.message === `${method}() takes no arguments and returns a Promise (await it), received a callback`,
      );
    }
  });

  it('rejects bad options with a TypeError naming the option and the value', () => {
    const cases: [SessionOptions, RegExp][] = [
      [{ type: 'nope' }, /type must be one of 'memory', 'file', 'dbm'.*received "nope"/],
      [{ timeout: -1 }, /timeout must be a finite number of seconds > 0 \(leave it out .*\), received -1/],
      [{ timeout: 0 }, /timeout must be a finite number of seconds > 0 \(leave it out .*\), received 0/],
      [{ timeout: Infinity }, /timeout must be a finite number of seconds > 0 .*received Infinity/],
      [{ timeout: 10, accessResolution: 60 }, /accessResolution must be less than timeout \(10\), received 60/],
      [{ timeout: 10, accessResolution: 10 }, /accessResolution must be less than timeout/],
      [{ key: 'a b' }, /key must be a valid cookie name, received "a b"/],
      [{ secret: [] }, /secret must be a non-empty, well-formed string/],
      [{ secret: '\uD800' }, /secret must be .*received a string of 1 characters, not well-formed Unicode/],
      [{ encryptKey: '\uD800'.repeat(16) }, /encryptKey must be .*not well-formed Unicode/],
      [{ sameSite: 'None' }, /secure: true/],
      [{ cookieExpires: 'tomorrow' as unknown as number }, /cookieExpires must be .*, received "tomorrow"/],
      [{ cookieExpires: 0 }, /cookieExpires must be .* seconds > 0, received 0/],
      [{ cookiePath: '/a;b' }, /cookiePath cannot be used/],
      [{ id: 42 as unknown as string }, /id must be a string, received 42/],
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

  it('never shows a secret or an encryptKey it rejects', () => {
    const nearMiss = 'Pr0d-K3y!x9#zQ';
    for (const options of [
      { encryptKey: nearMiss },
      { encryptKey: ['a good key, long enough', nearMiss] },
      { secret: ['a good secret', ''] },
    ]) {
      assert.throws(
        () => new Session(undefined, options),
        (e: unknown) =>
          e instanceof TypeError &&
          /received (a string of \d+ characters|an array of 2: a string of \d+ characters; a string of \d+ characters)$/.test(
            e.message,
          ) &&
          !e.message.includes(nearMiss) &&
          !e.message.includes('good'),
      );
    }
  });
});
