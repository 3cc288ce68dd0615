/**
 * From the UDP payload to a validated SPA message, in fwknopd's order
 * (incoming_spa.c): outer checks that need no key, then per door
 * HMAC → decryption → plaintext parsing. Pure: no I/O, no logging, and
 * nothing returned or thrown contains key material.
 *
 * Wire format (fwknop 2.6.x, Rijndael + HMAC):
 *
 *   blob = "Salted__" || salt(8) || AES-256-CBC(plaintext)
 *   B    = base64(blob) without "="; its first 10 chars are always "U2FsdGVkX1"
 *   wire = B[10:] || base64(HMAC(hmacKey, "U2FsdGVkX1" + B[10:])) without "="
 *
 * Every check works on the exact bytes received, so exactly one text is
 * accepted per authentic packet; that is what makes a digest of the payload a
 * sound replay key (the reference's pitfall P6): a re-padded, re-prefixed,
 * whitespace-suffixed or re-encoded copy is refused before or at the HMAC.
 */
import { createDecipheriv, createHmac, timingSafeEqual } from 'node:crypto';

import { HMAC_TYPES } from './keys';
import type { SpaKeys } from './keys';
import { deriveKeyIv, SALT_BYTES } from './kdf';
import { parseSpaPlaintext } from './message';
import { refuse } from './types';
import type { SpaMessage, SpaRefusal } from './types';

/** Payload lengths fwknopd considers (MIN_SPA_DATA_SIZE, MAX_SPA_PACKET_LEN). */
export const MIN_SPA_PAYLOAD = 140;
export const MAX_SPA_PAYLOAD = 1500;
/** From this many characters on fwknopd takes a packet for GnuPG: a Rijndael door ignores it (MIN_GNUPG_MSG_SIZE). */
export const GPG_MIN_PAYLOAD = 400;
/** The base64 of "Salted__"'s first 7.5 bytes, cut off by the client and re-added by the server. */
export const SALTED_PREFIX_B64 = 'U2FsdGVkX1';

const PREFIX_BYTES = Buffer.from(SALTED_PREFIX_B64, 'latin1');
const SALTED = Buffer.from('Salted__', 'latin1');
const AES_BLOCK = 16;

/** 1 for each byte of the standard base64 alphabet without `=`. */
const B64_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64_BYTE[c.charCodeAt(0)] = 1;

/**
 * Checks that need no key (fwknopd's pre-filter): length 140..1500 and under
 * 400 (Rijndael), no leading `U2FsdGVkX1`, base64 alphabet only. fwknopd also
 * lets `=` through here; the client never sends one, and one anywhere makes
 * the HMAC fail, so refusing it now gives the same verdict sooner.
 * @returns undefined when the payload may be an SPA packet.
 */
export function precheckSpaPayload(payload: Buffer): SpaRefusal | undefined {
  const n = payload.length;
  if (n < MIN_SPA_PAYLOAD || n > MAX_SPA_PAYLOAD)
    return refuse(
      'length',
      `payload of ${n} bytes is not an SPA packet (${MIN_SPA_PAYLOAD}..${MAX_SPA_PAYLOAD} bytes)`,
    );
  if (payload.subarray(0, PREFIX_BYTES.length).equals(PREFIX_BYTES)) {
    return refuse(
      'prefix',
      `payload starts with "${SALTED_PREFIX_B64}", which the fwknop client never sends (a disguised replay?)`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (B64_BYTE[payload[i]] === 0) return refuse('charset', `payload byte ${i} is not a base64 character`);
  }
  if (n >= GPG_MIN_PAYLOAD) {
    return refuse(
      'too-long',
      `payload of ${n} characters would be GnuPG-encrypted for fwknopd; only Rijndael (under ${GPG_MIN_PAYLOAD}) is supported`,
    );
  }
  return undefined;
}

/**
 * HMAC check, before anything is decrypted: the tag is the last
 * `tagChars` characters (fixed by the door's HMAC type); our own tag is
 * base64-encoded without `=` and compared with it as text, in constant time.
 * @returns the base64 body (without the tag), or undefined on mismatch.
 */
export function verifySpaHmac(payload: Buffer, keys: SpaKeys): Buffer | undefined {
  const { hash, tagChars } = HMAC_TYPES[keys.hmacType];
  if (payload.length <= tagChars) return undefined;
  const body = payload.subarray(0, payload.length - tagChars);
  const tag = payload.subarray(payload.length - tagChars);
  const b64 = createHmac(hash, keys.hmac).update(PREFIX_BYTES).update(body).digest('base64');
  const mine = Buffer.from(b64.endsWith('=') ? b64.replace(/=+$/, '') : b64, 'latin1');
  // Equal lengths by construction; the check keeps timingSafeEqual from throwing.
  return mine.length === tag.length && timingSafeEqual(mine, tag) ? body : undefined;
}

/**
 * Decrypts the base64 body (prefix re-added) with the door's passphrase.
 * @returns the plaintext, or undefined if the blob is malformed or the key wrong.
 */
export function decryptSpaBody(body: Buffer, passphrase: Buffer): string | undefined {
  const text = SALTED_PREFIX_B64 + body.toString('latin1');
  if (text.length % 4 === 1) return undefined; // no base64 has this length
  const blob = Buffer.from(text, 'base64');
  // One encoding per blob: the unused low bits of the last character must be zero.
  if (blob.toString('base64').replace(/=+$/, '') !== text) return undefined;
  const ctLen = blob.length - SALTED.length - SALT_BYTES;
  if (!blob.subarray(0, SALTED.length).equals(SALTED) || ctLen < AES_BLOCK || ctLen % AES_BLOCK !== 0) return undefined;
  const salt = blob.subarray(SALTED.length, SALTED.length + SALT_BYTES);
  const { key, iv } = deriveKeyIv(passphrase, salt);
  let plain: Buffer;
  try {
    const d = createDecipheriv('aes-256-cbc', key, iv); // PKCS#7 padding checked by OpenSSL
    plain = Buffer.concat([d.update(blob.subarray(SALTED.length + SALT_BYTES)), d.final()]);
  } catch {
    return undefined; // bad padding: wrong key
  } finally {
    key.fill(0);
    iv.fill(0);
  }
  // fwknopd's quick key check: 16 digits then ':'.
  if (plain.length < 17 || plain[16] !== 0x3a) return undefined;
  for (let i = 0; i < plain.length; i++) {
    const c = plain[i];
    if (i < 16 ? c < 0x30 || c > 0x39 : c < 0x21 || c > 0x7e) return undefined;
  }
  return plain.toString('latin1');
}

export type SpaDecodeResult = { ok: true; message: SpaMessage } | SpaRefusal;

/**
 * The whole decoder for one door's keys: precheck, HMAC, decrypt, parse.
 * (The replay lookup and the source check sit between the precheck and the
 * HMAC in handleSpaPacket(); call this directly only for tests and tools.)
 */
export function decodeSpaPacket(payload: Buffer, keys: SpaKeys): SpaDecodeResult {
  const pre = precheckSpaPayload(payload);
  if (pre !== undefined) return pre;
  return decodeSpaAfterPrecheck(payload, keys);
}

/** HMAC, decrypt, parse; the payload must have passed precheckSpaPayload(). */
export function decodeSpaAfterPrecheck(payload: Buffer, keys: SpaKeys): SpaDecodeResult {
  const body = verifySpaHmac(payload, keys);
  if (body === undefined) {
    return refuse(
      'hmac',
      `HMAC mismatch (wrong spa_hmac_key_base64, or the client's --hmac-digest-type is not ${keys.hmacType})`,
    );
  }
  const plain = decryptSpaBody(body, keys.encryption);
  if (plain === undefined) return refuse('decrypt', 'HMAC is valid but decryption failed (wrong spa_key_base64?)');
  return parseSpaPlaintext(plain);
}
