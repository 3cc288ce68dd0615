/**
 * A test-only SPA encoder (what fwknop's client does), used to wrap arbitrary
 * plaintexts in valid encryption and HMAC: for fuzzing the plaintext parser
 * behind the HMAC, and for benchmarks. Tests of compatibility use packets
 * from the real client (test/fixtures/spa), never this.
 */
import { createCipheriv, createHash, createHmac } from 'node:crypto';

import { deriveKeyIv } from '../../src/spa/kdf';
import { HMAC_TYPES } from '../../src/spa/keys';
import type { SpaKeys } from '../../src/spa/keys';

const noPad = (s: string): string => s.replace(/=+$/, '');

/** Encrypts `plaintext` and appends the HMAC, as the client does; `salt` is 8 bytes. */
export function encodeSpa(plaintext: string, keys: SpaKeys, salt: Buffer): string {
  const { key, iv } = deriveKeyIv(keys.encryption, salt);
  const c = createCipheriv('aes-256-cbc', key, iv);
  const blob = Buffer.concat([Buffer.from('Salted__', 'latin1'), salt, c.update(plaintext, 'latin1'), c.final()]);
  const b = noPad(blob.toString('base64'));
  const tag = noPad(createHmac(HMAC_TYPES[keys.hmacType].hash, keys.hmac).update(b, 'latin1').digest('base64'));
  return b.slice(10) + tag;
}

/** A plaintext with a correct SHA-256 digest appended: `fields` joined by ":" then ":" + digest. */
export function spaPlaintext(fields: readonly string[]): string {
  const body = fields.join(':');
  return `${body}:${noPad(createHash('sha256').update(body, 'latin1').digest('base64'))}`;
}

export const b64 = (s: string): string => noPad(Buffer.from(s, 'latin1').toString('base64'));
