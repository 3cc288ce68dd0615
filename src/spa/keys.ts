/**
 * SPA key material: the HMAC digest types fwknop offers, and key objects that
 * never show their bytes when logged or serialized.
 */
import { inspect } from 'node:util';

import type { SpaHmacType, SpaKeys } from '../model';

export type { SpaHmacType, SpaKeys } from '../model';

/** Per HMAC type: Node's hash name and the length of the tag on the wire (base64, no `=`). */
export const HMAC_TYPES: Readonly<Record<SpaHmacType, { hash: string; tagChars: number }>> = {
  md5: { hash: 'md5', tagChars: 22 },
  sha1: { hash: 'sha1', tagChars: 27 },
  sha256: { hash: 'sha256', tagChars: 43 },
  sha384: { hash: 'sha384', tagChars: 64 },
  sha512: { hash: 'sha512', tagChars: 86 },
  sha3_256: { hash: 'sha3-256', tagChars: 43 },
  sha3_512: { hash: 'sha3-512', tagChars: 86 },
};

export const DEFAULT_HMAC_TYPE: SpaHmacType = 'sha256';

/** Longest Rijndael passphrase fwknop accepts (RIJNDAEL_MAX_KEYSIZE). */
export const MAX_ENCRYPTION_KEY_BYTES = 32;
/** Longest HMAC key fwknop accepts (SHA512_BLOCK_LEN). */
export const MAX_HMAC_KEY_BYTES = 128;

export function isSpaHmacType(s: string): s is SpaHmacType {
  return Object.prototype.hasOwnProperty.call(HMAC_TYPES, s);
}

const REDACTED = '[redacted]';

/**
 * Wraps copies of the key bytes in an object whose `toJSON()` and
 * `util.inspect` form are "[redacted]"; the byte fields are non-enumerable,
 * so spreading or Object.entries() does not expose them either.
 */
export function makeSpaKeys(encryption: Buffer, hmac: Buffer, hmacType: SpaHmacType): SpaKeys {
  const keys = {};
  Object.defineProperties(keys, {
    encryption: { value: Buffer.from(encryption), enumerable: false },
    hmac: { value: Buffer.from(hmac), enumerable: false },
    hmacType: { value: hmacType, enumerable: true },
    toJSON: { value: () => REDACTED, enumerable: false },
    toString: { value: () => REDACTED, enumerable: false },
    [inspect.custom]: { value: () => REDACTED, enumerable: false },
  });
  return Object.freeze(keys) as SpaKeys;
}

/**
 * The HMAC key as base64, for the one place it crosses a process boundary: the
 * capture process checks each SPA packet's HMAC before the parent spends work
 * on it (capture/spa-gate.ts). The encryption key never leaves this process.
 * Never log the result.
 */
export function spaHmacKeyBase64(keys: SpaKeys): string {
  return keys.hmac.toString('base64');
}
