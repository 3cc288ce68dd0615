/**
 * fwknop's Rijndael key derivation: OpenSSL's `EVP_BytesToKey` with MD5 and
 * one iteration (what `openssl enc -aes-256-cbc -md md5` does), giving a
 * 32-byte AES-256 key and a 16-byte IV from the passphrase and the packet's
 * 8-byte salt:
 *
 *   D1 = MD5(P || S), D2 = MD5(D1 || P || S), D3 = MD5(D2 || P || S)
 *   key = D1 || D2, iv = D3
 *
 * Why hand-written: node:crypto offers no EVP_BytesToKey (the deprecated
 * `crypto.createCipher()` used it internally, without a salt, and is gone in
 * Node 22); scrypt/pbkdf2 are different functions. These three MD5 calls are
 * the whole algorithm; the cipher itself is node:crypto's aes-256-cbc.
 */
import { createHash } from 'node:crypto';

export const SALT_BYTES = 8;

export function deriveKeyIv(passphrase: Buffer, salt: Buffer): { key: Buffer; iv: Buffer } {
  const d1 = createHash('md5').update(passphrase).update(salt).digest();
  const d2 = createHash('md5').update(d1).update(passphrase).update(salt).digest();
  const d3 = createHash('md5').update(d2).update(passphrase).update(salt).digest();
  return { key: Buffer.concat([d1, d2]), iv: d3 };
}
