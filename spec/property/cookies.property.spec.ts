/** Property: any Cookie header gives the right session or a new one, never a throw. */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { cookieValues } from '../../lib/cookie.js';
import { MemoryStore, Session, type SessionOptions } from '../../lib/index.js';
import { IdSigner } from '../../lib/session-id.js';

describe('cookies and ids (property)', () => {
  const options: SessionOptions = { store: new MemoryStore(), key: 'sid', secret: ['current', 'older'] };
  let valid: string;
  let id: string;

  before(async () => {
    const session = await Session.open({ headers: {} }, options);
    session.data.user = 'ann';
    await session.save();
    id = session.id;
    valid = (session.cookieHeader as string).split(';')[0]?.slice('sid='.length) as string;
  });

  it('never throws for any header, and loads the stored session only with its exact cookie', async () => {
    const junkPair = fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 40 })).map(([k, v]) => `${k}=${v}`);
    const header = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.array(junkPair, { maxLength: 6 }).map((pairs) => pairs.join('; ')),
      fc.array(fc.oneof(junkPair, fc.constant('sid=VALID')), { maxLength: 6 }).map((pairs) => pairs.join('; ')),
    );
    await fc.assert(
      fc.asyncProperty(header, async (raw) => {
        const cookie = raw.replaceAll('VALID', valid);
        const session = await Session.open({ headers: { cookie } }, options);
        const carriesValid = cookieValues(cookie, 'sid').includes(valid);
        assert.equal(session.isNew, !carriesValid, JSON.stringify(cookie));
        if (!session.isNew) assert.equal(session.id, id);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects every single-character change to a signed cookie', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.string({ minLength: 1, maxLength: 1 }), async (position, replacement) => {
        const index = position % valid.length;
        const tampered = valid.slice(0, index) + replacement + valid.slice(index + 1);
        fc.pre(tampered !== valid);
        const session = await Session.open({ headers: { cookie: `sid=${tampered}` } }, options);
        assert.equal(session.isNew, true);
      }),
      { numRuns: 300 },
    );
  });

  it('verifies only what one of its secrets signed', () => {
    const signer = new IdSigner(['current', 'older']);
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (value) => {
        const verified = signer.verify(value);
        if (!verified.ok) return;
        const resigned = [new IdSigner(['current']).sign(verified.id), new IdSigner(['older']).sign(verified.id)];
        assert.ok(resigned.includes(value));
      }),
      { numRuns: 3000 },
    );
  });
});
