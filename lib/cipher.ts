/**
 * Encryption at rest: each stored value sealed with AES-256-GCM under a fresh 96-bit nonce,
 * bound to its namespace and key (as additional data) so a value copied to another session
 * or key does not decrypt. Keys rotate as secrets do: seal with the first, open with any.
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { describe } from './options.js';

const VERSION = 'e1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The shortest `encryptKey` accepted. */
export const MIN_KEY_LENGTH = 16;

interface DerivedKey {
  id: string;
  key: Buffer;
}

/** Seals and opens stored values. */
export class ValueCipher {
  readonly #keys: DerivedKey[];

  /** `keys`: passphrases or random strings; each is stretched into an AES-256 key with HKDF-SHA256. */
  constructor(keys: readonly string[]) {
    this.#keys = keys.map((secret) => {
      const key = Buffer.from(hkdfSync('sha256', secret, 'sessionlock', 'value encryption', 32));
      return { id: createHash('sha256').update(key).digest('base64url').slice(0, 6), key };
    });
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
    if (version !== VERSION || encoded === undefined) throw new Error('the value is not encrypted by sessionlock');
    const known = this.#keys.find((candidate) => candidate.id === id);
    if (!known) throw new Error('the value was encrypted with a key that is not configured');
    const body = Buffer.from(encoded, 'base64url');
    if (body.length < NONCE_BYTES + TAG_BYTES) throw new Error('the encrypted value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', known.key, body.subarray(0, NONCE_BYTES));
    decipher.setAAD(additionalData(namespace, key));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
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
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    !keys.every((k) => typeof k === 'string' && k.length >= MIN_KEY_LENGTH)
  ) {
    throw new TypeError(
      `encryptKey must be a string of ${MIN_KEY_LENGTH}+ characters or an array of them, received ${describe(encryptKey)}`,
    );
  }
  return new ValueCipher(keys);
}

function additionalData(namespace: string, key: string): Buffer {
  return Buffer.from(`${namespace.length}:${namespace}${key}`, 'utf8');
}
