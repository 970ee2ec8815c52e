/**
 * The benchmark's own redis-server (spec/fixtures/redis-server.ts: a free port on 127.0.0.1,
 * no persistence), started once per scenario process.
 * @module
 */
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { findRedisServer, RedisServer } from '../../spec/fixtures/redis-server.js';

let server: Promise<RedisServer> | undefined;

/** Whether a redis-server can be started here. */
export function redisAvailable(): boolean {
  return findRedisServer() !== undefined;
}

/** Starts (once) and returns the scenario's redis-server; it stops when the process exits. */
export function benchRedis(): Promise<RedisServer> {
  server ??= RedisServer.start();
  return server;
}

export async function stopBenchRedis(): Promise<void> {
  if (!server) return;
  const running = await server;
  server = undefined;
  await running.destroy();
}

/**
 * How many commands clients send while `fn` runs (Lua scripts count once, not the commands
 * inside them): a MONITOR connection watches, so run it apart from timed runs.
 */
export async function clientCommands(redis: RedisServer, fn: () => Promise<unknown>): Promise<number> {
  const socket = net.connect(redis.port, redis.host);
  await once(socket, 'connect');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  socket.write('*1\r\n$7\r\nMONITOR\r\n');
  while (!text.startsWith('+OK')) await sleep(1);
  await fn();
  await sleep(50);
  socket.destroy();
  return text.split('\r\n').filter((line) => /^\+\d+\.\d+ \[\d+ (?!lua\])/.test(line)).length;
}
