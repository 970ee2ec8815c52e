/**
 * Maps `type` names to NamespaceManager classes: the built-in 'memory', 'file', 'dbm' and
 * 'redis', and any an application registers.
 * @module
 */
import { describe } from '../options.js';
import { DBMNamespaceManager } from './dbm.js';
import { FileNamespaceManager } from './file.js';
import { MemoryNamespaceManager } from './memory.js';
import type { NamespaceManager } from './namespace-manager.js';
import type { NamespaceManagerOptions } from './namespace-options.js';
import { RedisNamespaceManager } from './redis.js';

/** A NamespaceManager backend: a class constructed with `(namespace, options)`. */
// biome-ignore lint/suspicious/noExplicitAny: each backend takes its own options type
export type NamespaceManagerClass = new (namespace: string, options: any) => NamespaceManager;

const backends = new Map<string, NamespaceManagerClass>([
  ['memory', MemoryNamespaceManager],
  ['file', FileNamespaceManager],
  ['dbm', DBMNamespaceManager],
  ['redis', RedisNamespaceManager],
]);

/** Makes `type` select `backend`, e.g. `registerNamespaceManager('sqlite', SqliteNamespaceManager)`. */
export function registerNamespaceManager(type: string, backend: NamespaceManagerClass): void {
  if (typeof type !== 'string' || type.length === 0)
    throw new TypeError(`type must be a non-empty string, received ${describe(type)}`);
  if (typeof backend !== 'function')
    throw new TypeError(`backend must be a NamespaceManager class, received ${describe(backend)}`);
  backends.set(type, backend);
}

/** The class registered for `type`; throws a TypeError listing the known types otherwise. */
export function namespaceManagerClass(type: string): NamespaceManagerClass {
  const backend = backends.get(type);
  if (!backend) {
    throw new TypeError(
      `type must be one of ${[...backends.keys()].map((t) => `'${t}'`).join(', ')}, received ${describe(type)}`,
    );
  }
  return backend;
}

/** Constructs the backend registered for `type`. */
export function createNamespaceManager(
  type: string,
  namespace: string,
  options: NamespaceManagerOptions & Record<string, unknown>,
): NamespaceManager {
  const Backend = namespaceManagerClass(type);
  return new Backend(namespace, options);
}
