/**
 * sessionlock: server-side web sessions that stay correct under concurrent access.
 * @module sessionlock
 */
export type { AdapterSessionData, SessionData, SessionMiddlewareOptions } from './adapters/core.js';
export {
  CacheRegion,
  Container,
  type ContainerOptions,
  DBMContainer,
  FileContainer,
  type GetOptions,
  MemoryContainer,
  RedisContainer,
  Value,
} from './container.js';
export {
  LockCompromisedError,
  LockStateError,
  LockTimeoutError,
  SerializationError,
  SessionCorruptError,
  SessionlockError,
  SessionNotLoadedError,
  StorageError,
  type Undecodable,
  UndecodableValueError,
} from './errors.js';
export type { LockMode } from './lock/keyed-rw-lock.js';
export { DBMNamespaceManager, type DBMNamespaceManagerOptions } from './namespace/dbm.js';
export { FileNamespaceManager, type FileNamespaceManagerOptions } from './namespace/file.js';
export {
  defaultMemoryStore,
  MemoryNamespaceManager,
  type MemoryNamespaceManagerOptions,
  MemoryStore,
} from './namespace/memory.js';
export { NamespaceManager } from './namespace/namespace-manager.js';
export {
  type AcquireReadLockOptions,
  type AcquireWriteLockOptions,
  type ApplyChangesOptions,
  type EncodedChanges,
  type EncodedEntries,
  type ExpiringOptions,
  HELD_ELSEWHERE,
  NAMESPACE_MANAGER_OPTIONS,
  type NamespaceLockState,
  type NamespaceManagerOptions,
  UNSUPPORTED,
} from './namespace/namespace-options.js';
export { RedisNamespaceManager, type RedisNamespaceManagerOptions } from './namespace/redis.js';
export {
  createNamespaceManager,
  type NamespaceManagerClass,
  namespaceManagerClass,
  registerNamespaceManager,
} from './namespace/registry.js';
export { UNKNOWN_OPTION_WARNING } from './options.js';
export { jsonSerializer, type Serializer } from './serializer.js';
export { Session } from './session.js';
export type { SessionLoadOptions, SessionLockOptions, SessionOptions, SessionRequest } from './session-options.js';
export { type SweepOptions, type SweepResult, type SweepType, type SweptEntry, sweep } from './sweep.js';
