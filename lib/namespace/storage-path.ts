/**
 * Maps any namespace string to a file name that stays inside its directory and never
 * collides with another namespace's, on case-sensitive and case-insensitive file systems.
 * @module
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

const PLAIN = /^[a-z0-9_-]{1,128}$/;
const MAX_HEX_BYTES = 60;

/**
 * The file name stem of a namespace:
 * - lowercase letters, digits, `_` and `-` (up to 128), as session ids are: the name itself;
 * - anything else up to 60 UTF-8 bytes: `=` and the bytes in hex;
 * - longer names: `+` and the SHA-256 of the name in hex.
 * The three forms start differently, so they cannot collide with each other.
 */
export function storageName(namespace: string): string {
  if (PLAIN.test(namespace)) return namespace;
  const bytes = Buffer.from(namespace, 'utf8');
  if (bytes.length <= MAX_HEX_BYTES) return `=${bytes.toString('hex')}`;
  return `+${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The namespace a file name stem stands for, or `undefined` for hashed names (which cannot be reversed). */
export function namespaceOf(stem: string): string | undefined {
  if (PLAIN.test(stem)) return stem;
  if (stem.startsWith('=') && /^=(?:[0-9a-f]{2})*$/.test(stem))
    return Buffer.from(stem.slice(1), 'hex').toString('utf8');
  return undefined;
}

/** The path of a namespace's file inside `dataDir`, with `extension` (e.g. `.json`). */
export function storagePath(dataDir: string, namespace: string, extension: string): string {
  return path.join(path.resolve(dataDir), storageName(namespace) + extension);
}
