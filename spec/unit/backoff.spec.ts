import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retryWithBackoff } from '../../lib/lock/backoff.js';

describe('retryWithBackoff', () => {
  it('returns the first defined result, attempting until then', async () => {
    let calls = 0;
    const result = await retryWithBackoff(() => (++calls === 3 ? 'done' : undefined), {
      deadline: Date.now() + 10_000,
    });
    assert.equal(result, 'done');
    assert.equal(calls, 3);
  });

  it('with waitFirst, waits before its first attempt: none at all once the deadline has passed', async () => {
    let calls = 0;
    const attempt = () => {
      calls++;
      return undefined;
    };
    assert.equal(await retryWithBackoff(attempt, { deadline: Date.now() - 1, waitFirst: true }), undefined);
    assert.equal(calls, 0, 'the caller had just attempted');
    assert.equal(await retryWithBackoff(attempt, { deadline: Date.now() - 1 }), undefined);
    assert.equal(calls, 1);
  });
});
