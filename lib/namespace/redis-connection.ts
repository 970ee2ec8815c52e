/**
 * Redis as the redis backend talks to it: ioredis is imported on first use; each `url` gets
 * one client per process, created lazily; every command waits for a ready connection and
 * for its reply only up to `commandTimeout`, so an unreachable server gives a
 * {@link StorageError} naming its address instead of a hang, and a command that gave up is
 * never sent later.
 * @module
 */
import type { Cluster, Redis } from 'ioredis';
import { StorageError } from '../errors.js';

/** An ioredis client: a `Redis` connection or a `Cluster`. */
export type RedisClient = Redis | Cluster;

/** A Lua script, run with EVALSHA (EVAL the first time on each connection) through ioredis's `defineCommand`. */
export interface LuaScript {
  /** The command name it is defined under on a client. */
  readonly name: string;
  /** How many of its arguments are keys. */
  readonly keys: number;
  readonly lua: string;
}

/** A command defined with `defineCommand`, given its keys and arguments in one array (a spread of 100k would overflow the stack). */
type ScriptCommand = (keysAndArgs: (string | number)[]) => Promise<unknown>;

const sharedClients = new Map<string, Promise<Redis>>();
/** The shared clients opened so far, by URL, for commands that need not wait. */
const readyClients = new Map<string, Redis>();
const clientIds = new WeakMap<RedisClient, number>();
const definedScripts = new WeakMap<RedisClient, Set<string>>();
/** How many commands wait on each client: a shared client reconnects only while one does. */
const waiting = new WeakMap<RedisClient, number>();
/** The longest commandTimeout of the connections that waited for each shared client to connect: how long closing it waits for QUIT. */
const closeTimeouts = new WeakMap<Redis, number>();
/** Each connecting client's next 'ready' (or 'error'), shared by every command that waits for it. */
const readiness = new WeakMap<RedisClient, Promise<void>>();
let nextClientId = 0;
/** How long closing a shared client waits for QUIT when no connection recorded its commandTimeout. */
const DEFAULT_CLOSE_TIMEOUT = 5000;

/** Commands to one Redis server or cluster, each bounded by a timeout. */
export class RedisConnection {
  /** Equal for connections that share a client. */
  readonly id: string;
  readonly #source: RedisClient | URL;
  readonly #timeout: number;

  /** `source`: an application's client, or the URL of a client shared in this process. */
  constructor(source: RedisClient | URL, timeout: number) {
    this.#source = source;
    this.#timeout = timeout;
    if (source instanceof URL) {
      this.id = source.href;
    } else {
      if (!clientIds.has(source)) clientIds.set(source, nextClientId++);
      this.id = `client-${clientIds.get(source)}`;
    }
  }

  /** The server's `host:port` (or socket path, or a cluster's nodes), for messages. */
  get address(): string {
    const source = this.#source;
    if (source instanceof URL) return `${source.hostname || '127.0.0.1'}:${source.port || 6379}`;
    if (source.isCluster) {
      const nodes = (source as Cluster).nodes('master').map((node) => addressOf(node));
      return `cluster ${nodes.join(',') || '(no node reached yet)'}`;
    }
    return addressOf(source as Redis);
  }

  /**
   * Sends what `send` sends once the connection is ready. Rejects with a StorageError
   * ("Cannot `action` redis at `address`: reason") when it fails or takes longer than the timeout.
   */
  command<T>(action: string, send: (client: RedisClient, timeout: number) => Promise<T>): Promise<T> {
    const client = this.#source instanceof URL ? readyClients.get(this.#source.href) : this.#source;
    if (client?.status === 'ready') return this.#send(client, action, send, this.#timeout);
    return this.#sendWhenReady(action, send);
  }

  /** Waits for a ready connection, then sends within what is left of the timeout. */
  async #sendWhenReady<T>(action: string, send: (client: RedisClient, timeout: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#timeout;
    let client: RedisClient;
    try {
      client = await this.#readyClient(deadline);
    } catch (error) {
      throw new StorageError(this.address, `${action} redis at`, { cause: error });
    }
    return this.#send(client, action, send, deadline - Date.now());
  }

  async #send<T>(
    client: RedisClient,
    action: string,
    send: (client: RedisClient, timeout: number) => Promise<T>,
    timeout: number,
  ): Promise<T> {
    try {
      return await waitingOn(
        client,
        () => {
          batchWritesThisTurn(client);
          return send(client, timeout);
        },
        timeout,
        () => `no reply within ${this.#timeout} ms (commandTimeout)`,
      );
    } catch (error) {
      throw new StorageError(this.address, `${action} redis at`, { cause: error });
    }
  }

  /** The client once its connection is ready; rejects when that takes past `deadline`. */
  async #readyClient(deadline: number): Promise<RedisClient> {
    const client = await this.#client();
    if (client.status === 'ready') return client;
    await waitingOn(
      client,
      () => whenReady(client),
      deadline - Date.now(),
      () => `no reply within ${this.#timeout} ms (commandTimeout) while the connection was ${client.status}`,
    );
    return client;
  }

  /**
   * Runs `script` with `keys` and, before `args`, the time (epoch ms on the server's clock)
   * after which the command has timed out here: a script that checks it against Redis's
   * `TIME` writes nothing when it arrives later (a network partition that delivers it once
   * the caller was told it failed). See {@link serverClockOffset} for how that clock is known.
   */
  scriptWithDeadline(
    action: string,
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    return this.command(action, async (client, timeout) => {
      const deadline = Date.now() + timeout;
      let offset = knownClockOffset(client, this.#timeout);
      if (offset === undefined) {
        offset = await serverClockOffset(client, this.#timeout, keys[0] as string);
        batchWritesThisTurn(client);
      }
      return runScript(client, script, keys, [Math.floor(deadline + offset), ...args]);
    });
  }

  /** Runs `script` with `keys` and `args`, like {@link command}. */
  script(
    action: string,
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    return this.command(action, (client) => runScript(client, script, keys, args));
  }

  #client(): Promise<RedisClient> {
    const source = this.#source;
    return source instanceof URL ? sharedClient(source, this.#timeout) : Promise.resolve(source);
  }
}

/** A {@link LuaScript} named `sessionlock<Name>`. */
export function luaScript(name: string, keys: number, lua: string): LuaScript {
  return { name: `sessionlock${name}`, keys, lua };
}

/** Whether `error` is a command's loss with its connection (not a timeout, nor Redis refusing it). */
export function isConnectionDrop(error: unknown): boolean {
  const cause = error instanceof StorageError ? error.cause : error;
  return cause instanceof Error && cause.name === 'MaxRetriesPerRequestError';
}

/** Whether `error` is Redis saying a key holds another type than the command expects. */
export function isWrongType(error: unknown): boolean {
  const cause = error instanceof StorageError ? error.cause : error;
  return cause instanceof Error && cause.message.startsWith('WRONGTYPE');
}

/**
 * Closes the clients this process opened for `url`s (never an application's own client):
 * each is sent QUIT and, unless Redis answers within the longest commandTimeout of the
 * managers that waited for it to connect, disconnected. Until then the connection keeps the
 * process alive, so code after `await closeConnections()` runs even when nothing else is pending.
 */
export async function closeSharedClients(): Promise<void> {
  const clients = [...sharedClients.values()];
  sharedClients.clear();
  readyClients.clear();
  await Promise.all(
    clients.map(async (opening) => {
      const client = await opening.catch(() => undefined);
      if (client) await closeClient(client);
    }),
  );
}

async function closeClient(client: Redis): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  // The idle connection is unref'd (see openClient): ref it, or a process with nothing else
  // to do would exit while QUIT waits for its reply, and the caller's code after it never runs.
  client.stream.ref();
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, closeTimeouts.get(client) ?? DEFAULT_CLOSE_TIMEOUT, false);
  });
  const quit = client.quit().then(
    () => true,
    () => false,
  );
  try {
    if (!(await Promise.race([quit, gaveUp]))) client.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

async function sharedClient(url: URL, timeout: number): Promise<Redis> {
  const existing = sharedClients.get(url.href);
  if (existing) {
    const client = await existing.catch(() => undefined);
    if (client && client.status !== 'end') {
      closeTimeouts.set(client, Math.max(closeTimeouts.get(client) ?? 0, timeout));
      return client;
    }
    if (sharedClients.get(url.href) === existing) sharedClients.delete(url.href);
    return sharedClient(url, timeout);
  }
  const opening = openClient(url);
  sharedClients.set(url.href, opening);
  const client = await opening;
  closeTimeouts.set(client, Math.max(closeTimeouts.get(client) ?? 0, timeout));
  if (sharedClients.get(url.href) === opening) readyClients.set(url.href, client);
  return client;
}

async function openClient(url: URL): Promise<Redis> {
  let Client: typeof Redis;
  try {
    ({ Redis: Client } = await import('ioredis'));
  } catch (error) {
    throw new Error('the redis backend needs the ioredis package, an optional peer dependency: npm install ioredis', {
      cause: error,
    });
  }
  const client: Redis = new Client(url.href, {
    lazyConnect: true,
    // Commands are sent only on a ready connection (see whenReady), so none waits in a
    // queue past its timeout, and one cut off by a disconnect is not replayed later.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    // A command in flight on a connection that drops is rejected then (a StorageError), not
    // left to its commandTimeout: without resending, ioredis would never settle it.
    maxRetriesPerRequest: 0,
    // Reconnects only while a command waits; an idle client that lost its server ends
    // (and is replaced on next use), so it keeps no timer running.
    retryStrategy: (attempt: number): number | null => (waiting.get(client) ? Math.min(50 * attempt, 1000) : null),
    connectionName: 'sessionlock',
  });
  client.on('error', (error: Error & { command?: { name?: string } }) => {
    // A database the server refuses: ioredis would carry on in database 0. Once closed, the
    // client is replaced on next use, which fails the same way: every command is refused.
    if (error.command?.name === 'select') client.disconnect();
  });
  // An idle connection does not keep the process alive; a command in flight does (its timer).
  client.on('connect', () => client.stream.unref());
  return client;
}

/**
 * Runs `operation` against a timer of `ms` (then rejecting with `message()`), counted
 * meanwhile among the commands waiting on `client`.
 */
async function waitingOn<T>(
  client: RedisClient,
  operation: () => Promise<T>,
  ms: number,
  message: () => string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  waiting.set(client, (waiting.get(client) ?? 0) + 1);
  try {
    return await Promise.race([operation(), timedOut]);
  } finally {
    clearTimeout(timer);
    waiting.set(client, (waiting.get(client) as number) - 1);
  }
}

/**
 * Resolves when `client` is next 'ready', rejects at its next 'error' or when it ends. The commands that wait
 * share one pair of listeners per client (one each would pass the emitter's listener limit).
 */
function whenReady(client: RedisClient): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(new Error('the client has been closed'));
  if (client.status === 'wait') client.connect().catch(() => {});
  let next = readiness.get(client);
  if (!next) {
    next = new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        client.off('ready', onReady);
        client.off('error', onError);
        client.off('end', onEnd);
        readiness.delete(client);
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => settle();
      const onError = (error: Error) => settle(error);
      const onEnd = () => settle(new Error('the connection was closed'));
      client.on('ready', onReady);
      client.on('error', onError);
      client.on('end', onEnd);
    });
    // Every command that waited may have timed out before it settles.
    next.catch(() => {});
    readiness.set(client, next);
  }
  return next;
}

/** A measure of a server's clock: ms to add to this machine's, and how long the `TIME` that measured it took. */
interface ClockSample {
  readonly offset: number;
  readonly roundTrip: number;
  /** The client's connection it was taken on (see {@link connectionCounts}). */
  readonly connection: number;
}

/** The best clock sample taken on each client's current connection. */
const clockSamples = new WeakMap<RedisClient, ClockSample>();
/** How many times each client whose clock was measured has connected since: a sample from an earlier connection is not used. */
const connectionCounts = new WeakMap<RedisClient, number>();
/** How many `TIME`s one command sends before giving up on too slow round trips. */
const CLOCK_TRIES = 3;

/** The most a sample's `TIME` may have taken for a command with `commandTimeout`: its error (the round trip) eats at most a tenth of it. */
function maxRoundTrip(commandTimeout: number): number {
  return commandTimeout / 10;
}

/** The sample taken on `client`'s current connection, if any. */
function currentClockSample(client: RedisClient): ClockSample | undefined {
  const sample = clockSamples.get(client);
  return sample?.connection === connectionCounts.get(client) ? sample : undefined;
}

/** The offset of a sample taken on `client`'s current connection fast enough for `commandTimeout`, if there is one. */
function knownClockOffset(client: RedisClient, commandTimeout: number): number | undefined {
  const sample = currentClockSample(client);
  return sample && sample.roundTrip <= maxRoundTrip(commandTimeout) ? sample.offset : undefined;
}

/**
 * Milliseconds to add to this machine's clock to be sure not to be past the server's, measured
 * with `TIME`: the server read its clock some time between sending and receiving, so the
 * offset counts from the reply's arrival, and a deadline moved by it is early by at most the
 * round trip, never late. A round trip over a tenth of `commandTimeout` is measured again, up
 * to {@link CLOCK_TRIES} times, then the command fails. Each new connection measures anew.
 * The clock is read where `key` lives ({@link READ_CLOCK}): on a Cluster, the node of the
 * command that needs it, though the sample then serves the client's commands to every node.
 */
async function serverClockOffset(client: RedisClient, commandTimeout: number, key: string): Promise<number> {
  if (!connectionCounts.has(client)) {
    connectionCounts.set(client, 0);
    client.on('connect', () => connectionCounts.set(client, (connectionCounts.get(client) as number) + 1));
  }
  let slowest = 0;
  for (let tries = 0; tries < CLOCK_TRIES; tries++) {
    const connection = connectionCounts.get(client) as number;
    const sent = Date.now();
    const [seconds, microseconds] = (await runScript(client, READ_CLOCK, [key], [])) as [string, string];
    const received = Date.now();
    const roundTrip = received - sent;
    const known = currentClockSample(client);
    if (connection === connectionCounts.get(client) && !(known && known.roundTrip <= roundTrip)) {
      clockSamples.set(client, {
        offset: Number(seconds) * 1000 + Number(microseconds) / 1000 - received,
        roundTrip,
        connection,
      });
    }
    const offset = knownClockOffset(client, commandTimeout);
    if (offset !== undefined) return offset;
    slowest = Math.max(slowest, roundTrip);
  }
  throw new Error(
    `cannot measure the server's clock: ${CLOCK_TRIES} TIME round trips took up to ${slowest} ms, ` +
      `more than ${maxRoundTrip(commandTimeout)} ms (a tenth of commandTimeout); nothing was written`,
  );
}

/** Reads the server's clock where `KEYS[1]` lives: a Cluster sends a keyed script to the slot's primary. */
export const READ_CLOCK = luaScript('ReadClock', 1, "return redis.call('TIME')");

/** The Lua that returns `'late'` unless Redis's clock is still before `ARGV[1]` (see {@link RedisConnection.scriptWithDeadline}). */
export const RETURN_IF_LATE =
  "local now = redis.call('TIME')\n" +
  "if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then return 'late' end";

/** Runs `script` on `client` (defining it there first): EVALSHA, or EVAL when Redis lacks it. */
function runScript(
  client: RedisClient,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  defineScript(client, script);
  const run = (client as unknown as Record<string, ScriptCommand>)[script.name] as ScriptCommand;
  return run.call(client, [...keys, ...args]);
}

function defineScript(client: RedisClient, script: LuaScript): void {
  const names = definedScripts.get(client) ?? new Set();
  definedScripts.set(client, names);
  if (names.has(script.name)) return;
  client.defineCommand(script.name, { numberOfKeys: script.keys, lua: script.lua });
  names.add(script.name);
}

/**
 * Holds a connection's writes until the end of this turn of the event loop, so the commands
 * of many requests in flight go out in one write (as node-redis does) instead of one
 * system call each. Cluster clients write to several sockets and are left alone.
 */
function batchWritesThisTurn(client: RedisClient): void {
  const stream = client.isCluster ? undefined : (client as Redis).stream;
  if (!stream || stream.writableCorked > 0) return;
  stream.cork();
  process.nextTick(() => stream.uncork());
}

function addressOf(client: Redis): string {
  const { host, port, path } = client.options;
  return path ?? `${host ?? '127.0.0.1'}:${port ?? 6379}`;
}
