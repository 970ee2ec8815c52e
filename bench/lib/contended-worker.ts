/**
 * A worker process of the `contended` scenario: on each `run` message it increments one
 * session's counter `count` times, as a request handler of a multi-process app would —
 * sessionlock under `withLock`, a peer store with get → increment → set (it has no lock).
 * @module
 */
import { RedisNamespaceManager, Session } from 'sessionlock';
import {
  type Backend,
  createPeerStore,
  type Environment,
  type Peer,
  type PeerStore,
  sessionlockOptions,
  storeGet,
  storeSet,
} from './systems.js';

export type WorkerSystem = { kind: 'sessionlock'; backend: Backend } | { kind: 'peer'; peer: Peer };

export type WorkerMessage =
  | { type: 'prepare'; system: WorkerSystem; env: Environment }
  | { type: 'run'; system: WorkerSystem; env: Environment; handle: string; count: number }
  | { type: 'exit' };

export type WorkerReply = { type: 'ready' } | { type: 'done'; errors: number; firstError?: string };

const peers = new Map<Peer, Promise<PeerStore>>();
const options = new Map<Backend, ReturnType<typeof sessionlockOptions>>();

function optionsFor(backend: Backend, env: Environment) {
  let found = options.get(backend);
  if (!found) {
    found = sessionlockOptions(backend, env);
    options.set(backend, found);
  }
  return found;
}

function peerFor(peer: Peer, env: Environment): Promise<PeerStore> {
  let found = peers.get(peer);
  if (!found) {
    found = createPeerStore(peer, env);
    peers.set(peer, found);
  }
  return found;
}

async function increment(system: WorkerSystem, env: Environment, handle: string): Promise<void> {
  if (system.kind === 'sessionlock') {
    const session = await Session.open({ headers: { cookie: `sid=${handle}` } }, optionsFor(system.backend, env));
    if (session.isNew) throw new Error(`session ${handle} not found`);
    await session.withLock((s) => {
      s.data.visits = (s.data.visits as number) + 1;
    });
    return;
  }
  const { store } = await peerFor(system.peer, env);
  const data = (await storeGet(store, handle)) as unknown as { visits: number };
  if (!data) throw new Error(`session ${handle} not found`);
  data.visits++;
  await storeSet(store, handle, data as never);
}

function reply(message: WorkerReply): void {
  process.send?.(message);
}

process.on('message', async (message: WorkerMessage) => {
  if (message.type === 'exit') {
    for (const peer of peers.values()) await (await peer).close();
    await RedisNamespaceManager.closeConnections();
    process.disconnect?.();
    return;
  }
  if (message.type === 'prepare') {
    if (message.system.kind === 'sessionlock') optionsFor(message.system.backend, message.env);
    else await peerFor(message.system.peer, message.env);
    reply({ type: 'ready' });
    return;
  }
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < message.count; i++) {
    try {
      await increment(message.system, message.env, message.handle);
    } catch (error) {
      errors++;
      firstError ??= `${(error as Error).name}: ${(error as Error).message}`;
    }
  }
  reply(firstError === undefined ? { type: 'done', errors } : { type: 'done', errors, firstError });
});
reply({ type: 'ready' });
