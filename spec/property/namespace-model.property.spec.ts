/**
 * Model-based tests: every backend against a Map. Several actors (manager instances on one
 * namespace) take locks, read, write, release and remove in random orders; the backend must
 * behave as the model says. A second property runs concurrent transactions with random
 * delays and checks they are serialisable.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { LockStateError, type NamespaceManager } from '../../lib/index.js';
import { type BackendFixture, type BackendType, createFixture } from '../fixtures/backends.js';

type Mode = 'none' | 'read' | 'write';

interface Model {
  committed: Map<string, number>;
  actors: { mode: Mode; view: Map<string, number> }[];
}

interface Real {
  managers: NamespaceManager[];
}

type Command = fc.AsyncCommand<Model, Real>;

const ACTORS = 3;
const KEYS = ['a', 'b', 'c'];

const othersHold = (model: Model, actor: number, modes: Mode[]) =>
  model.actors.some((state, index) => index !== actor && modes.includes(state.mode));

function command(
  name: string,
  check: (model: Model) => boolean,
  run: (model: Model, real: Real) => Promise<void> | void,
): Command {
  return { check, run: async (model, real) => run(model, real), toString: () => name };
}

function commands(): fc.Arbitrary<Command>[] {
  const actor = fc.nat(ACTORS - 1);
  const key = fc.constantFrom(...KEYS);
  return [
    actor.map((a) =>
      command(
        `acquireWriteLock(${a}, no wait)`,
        (m) => m.actors[a]?.mode === 'none',
        async (m, r) => {
          const expected = !othersHold(m, a, ['read', 'write']);
          assert.equal(await r.managers[a]?.acquireWriteLock({ wait: false }), expected);
          if (expected) m.actors[a] = { mode: 'write', view: new Map(m.committed) };
        },
      ),
    ),
    actor.map((a) =>
      command(
        `acquireReadLock(${a})`,
        (m) => m.actors[a]?.mode === 'none' && !othersHold(m, a, ['write']),
        async (m, r) => {
          await r.managers[a]?.acquireReadLock();
          m.actors[a] = { mode: 'read', view: new Map(m.committed) };
        },
      ),
    ),
    fc.tuple(actor, key, fc.integer()).map(([a, k, v]) =>
      command(
        `set(${a}, ${k}, ${v})`,
        (m) => m.actors[a]?.mode === 'write',
        (m, r) => {
          r.managers[a]?.set(k, v);
          m.actors[a]?.view.set(k, v);
        },
      ),
    ),
    fc.tuple(actor, key).map(([a, k]) =>
      command(
        `delete(${a}, ${k})`,
        (m) => m.actors[a]?.mode === 'write',
        (m, r) => {
          assert.equal(r.managers[a]?.delete(k), m.actors[a]?.view.has(k));
          m.actors[a]?.view.delete(k);
        },
      ),
    ),
    fc.tuple(actor, key).map(([a, k]) =>
      command(
        `get(${a}, ${k})`,
        (m) => m.actors[a]?.mode !== 'none',
        (m, r) => {
          assert.equal(r.managers[a]?.get(k), m.actors[a]?.view.get(k));
          assert.deepEqual(r.managers[a]?.keys().sort(), [...(m.actors[a]?.view.keys() ?? [])].sort());
        },
      ),
    ),
    actor.map((a) =>
      command(
        `releaseWriteLock(${a})`,
        (m) => m.actors[a]?.mode === 'write',
        async (m, r) => {
          await r.managers[a]?.releaseWriteLock();
          m.committed = new Map(m.actors[a]?.view);
          m.actors[a] = { mode: 'none', view: new Map() };
        },
      ),
    ),
    actor.map((a) =>
      command(
        `releaseReadLock(${a})`,
        (m) => m.actors[a]?.mode === 'read',
        async (m, r) => {
          await r.managers[a]?.releaseReadLock();
          m.actors[a] = { mode: 'none', view: new Map() };
        },
      ),
    ),
    actor.map((a) =>
      command(
        `releaseWriteLock(${a}) without it`,
        (m) => m.actors[a]?.mode !== 'write',
        async (_m, r) => {
          await assert.rejects(r.managers[a]?.releaseWriteLock() as Promise<void>, LockStateError);
        },
      ),
    ),
    actor.map((a) =>
      command(
        `remove(${a})`,
        (m) => m.actors[a]?.mode === 'none' && !othersHold(m, a, ['read', 'write']),
        async (m, r) => {
          await r.managers[a]?.remove();
          m.committed = new Map();
        },
      ),
    ),
  ];
}

export function namespaceModel(type: BackendType, runs: number): void {
  describe(`NamespaceManager model: ${type}`, () => {
    let backend: BackendFixture;
    before(async () => {
      backend = await createFixture(type);
    });
    after(() => backend.cleanup());

    it('behaves like a Map with read/write locks, for random sequences from several actors', async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands(), { maxCommands: 40 }), async (sequence) => {
          const name = `model-${randomUUID()}`;
          const real: Real = { managers: Array.from({ length: ACTORS }, () => backend.create(name)) };
          const model: Model = {
            committed: new Map(),
            actors: Array.from({ length: ACTORS }, () => ({ mode: 'none' as Mode, view: new Map() })),
          };
          try {
            await fc.asyncModelRun(() => ({ model, real }), sequence);
          } finally {
            for (const [index, state] of model.actors.entries()) {
              if (state.mode === 'write') await real.managers[index]?.releaseWriteLock();
              if (state.mode === 'read') await real.managers[index]?.releaseReadLock();
            }
          }
        }),
        { numRuns: runs },
      );
    });

    it('serialises concurrent read-modify-write transactions with random delays', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.constantFrom(...KEYS), fc.nat(3), fc.boolean()), { minLength: 2, maxLength: 12 }),
          async (transactions) => {
            const name = `serial-${randomUUID()}`;
            const log: { reads: Record<string, number | undefined>; key: string; value: number }[] = [];
            await Promise.all(
              transactions.map(async ([key, delay, throws], index) => {
                const ns = backend.create(name);
                await ns
                  .withWriteLock(async () => {
                    const reads = Object.fromEntries(KEYS.map((k) => [k, ns.get(k) as number | undefined]));
                    await new Promise((resolve) => setTimeout(resolve, delay));
                    ns.set(key, index);
                    if (throws) throw new Error('rolled back');
                    log.push({ reads, key, value: index });
                  })
                  .catch((error: Error) => assert.equal(error.message, 'rolled back'));
              }),
            );
            const state: Record<string, number | undefined> = {};
            for (const entry of log) {
              assert.deepEqual(entry.reads, { a: state.a, b: state.b, c: state.c });
              state[entry.key] = entry.value;
            }
            const ns = backend.create(name);
            await ns.withReadLock(() => {
              for (const key of KEYS) assert.equal(ns.get(key), state[key]);
            });
          },
        ),
        { numRuns: Math.max(5, Math.round(runs / 3)) },
      );
    });
  });
}

namespaceModel('memory', 200);
namespaceModel('file', 60);
namespaceModel('dbm', 60);
namespaceModel('redis', 60);
