/**
 * Encryption at rest: each stored value sealed with AES-256-GCM under a fresh 96-bit nonce,
 * bound to its namespace and key (as additional data) so a value copied to another session
 * or key does not decrypt. Keys rotate as secrets do: seal with the first, open with any.
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { describeSecret } from './options.js';

const VERSION = 'e1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The shortest `encryptKey` accepted. */
export const MIN_KEY_LENGTH = 16;

interface DerivedKey {
  id: string;
  key: Buffer;
}

/** Why a stored value does not open: not sealed, sealed with a key not given, or altered, moved or damaged. */
export type OpenFailure = 'not sealed' | 'unknown key' | 'damaged';

/** A value that {@link ValueCipher.open} cannot open, and why. */
export class OpenError extends Error {
  readonly reason: OpenFailure;

  constructor(reason: OpenFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Seals and opens stored values. */
export class ValueCipher {
  readonly #keys: DerivedKey[];
  /** What every value sealed with the first key starts with. */
  readonly #current: string;

  /**
   * `keys`: random strings of 128 bits or more (HKDF-SHA256 derives an AES-256 key from
   * each; it adds no work factor, so a guessable passphrase is a guessable key).
   */
  constructor(keys: readonly string[]) {
    this.#keys = keys.map((secret) => {
      const key = Buffer.from(hkdfSync('sha256', secret, 'sessionlock', 'value encryption', 32));
      return { id: createHash('sha256').update(key).digest('base64url').slice(0, 6), key };
    });
    this.#current = `${VERSION}.${(this.#keys[0] as DerivedKey).id}.`;
  }

  /** Whether a value that opens was sealed with another key than the first (so sealing it again would change its key). */
  sealedWithOlderKey(sealed: string): boolean {
    return !sealed.startsWith(this.#current);
  }

  /** The sealed form of `plain`, stored under `key` of `namespace`. */
  seal(plain: string, namespace: string, key: string): string {
    const { id, key: secret } = this.#keys[0] as DerivedKey;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', secret, nonce);
    cipher.setAAD(additionalData(namespace, key));
    const body = Buffer.concat([nonce, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${id}.${body.toString('base64url')}`;
  }

  /** The plain text of a sealed value; throws if the key is unknown or the value was altered or moved. */
  open(sealed: string, namespace: string, key: string): string {
    const [version, id, encoded] = sealed.split('.');
    if (version !== VERSION || encoded === undefined) {
      throw new OpenError('not sealed', 'the value is not encrypted by sessionlock');
    }
    const known = this.#keys.find((candidate) => candidate.id === id);
    if (!known) throw new OpenError('unknown key', 'the value was encrypted with a key that is not configured');
    const body = Buffer.from(encoded, 'base64url');
    if (body.length < NONCE_BYTES + TAG_BYTES) throw new OpenError('damaged', 'the encrypted value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', known.key, body.subarray(0, NONCE_BYTES));
    decipher.setAAD(additionalData(namespace, key));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch (error) {
      throw new OpenError('damaged', `the encrypted value was altered, moved or damaged (${(error as Error).message})`);
    }
  }
}

/** Whether a stored form looks sealed by {@link ValueCipher} (for a clearer error when no key was given). */
export function looksSealed(form: string): boolean {
  return form.startsWith(`${VERSION}.`);
}

/** The cipher for the `encryptKey` option, or undefined without one. */
export function cipherFor(encryptKey: unknown): ValueCipher | undefined {
  if (encryptKey === undefined) return undefined;
  const keys = typeof encryptKey === 'string' ? [encryptKey] : encryptKey;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every(isUsableKey)) {
    throw new TypeError(
      `encryptKey must be a well-formed string of ${MIN_KEY_LENGTH}+ characters or an array of them, received ${describeSecret(encryptKey)}`,
    );
  }
  return new ValueCipher(keys);
}

function isUsableKey(key: unknown): key is string {
  return typeof key === 'string' && key.length >= MIN_KEY_LENGTH && key.isWellFormed();
}

function additionalData(namespace: string, key: string): Buffer {
  return Buffer.from(`${namespace.length}:${namespace}${key}`, 'utf8');
}
