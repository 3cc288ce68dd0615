/**
 * Types of the SPA layer: a decoded message, refusals with an admin-readable
 * reason, and a grant. Plain data; no key material ever appears in them.
 */
import type { SpaPortSpec } from '../model';

/** fwknop message types (the 5th plaintext field). */
export enum SpaMessageType {
  Command = 0,
  Access = 1,
  NatAccess = 2,
  ClientTimeoutAccess = 3,
  ClientTimeoutNatAccess = 4,
  LocalNatAccess = 5,
  ClientTimeoutLocalNatAccess = 6,
}

/** Inner digest types, inferred from the digest field's length. */
export type SpaDigestType = 'md5' | 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sha3_256' | 'sha3_512';

/** One `proto/port` of an access message, as the packet asks for it. */
export interface SpaAccessSpec {
  proto: 'tcp' | 'udp' | 'icmp' | 'none';
  port: number;
}

/** A decrypted, fully validated SPA message. */
export interface SpaMessage {
  /** The 16-digit random value. */
  random: string;
  /** Decoded username field (printable ASCII, fwknop's forbidden characters excluded). */
  username: string;
  /** Client's Unix time, seconds. */
  timestamp: number;
  /** Protocol version text, e.g. `3.0.0`. */
  version: string;
  type: SpaMessageType;
  /** `access` for types 1 and 3, `nat` for 2, 4, 5, 6, `command` for 0. */
  kind: 'access' | 'nat' | 'command';
  /** The allow IP of the message (canonical dotted quad; `0.0.0.0` = the client's `-s`). */
  allowIp: string;
  /** Requested proto/port list (empty for command messages). */
  access: SpaAccessSpec[];
  /** Decoded NAT field (`host,port`), types 2, 4, 5, 6 only. */
  nat?: string;
  /** Client-requested timeout in seconds (types 3, 4, 6). */
  clientTimeout?: number;
  digestType: SpaDigestType;
}

/** Why a packet opened nothing. `code` is stable (for counters and tests), `reason` is for the admin. */
export type SpaRefusalCode =
  // outer checks, before any key is used
  | 'length' // payload outside 140..1500 bytes
  | 'too-long' // 400+ characters: fwknopd takes it for GnuPG, a Rijndael door ignores it
  | 'prefix' // starts with U2FsdGVkX1 (the prefix the client strips)
  | 'charset' // a byte outside the base64 alphabet (padding, newline, space...)
  | 'source' // no door's spa_source contains the packet's source
  | 'replay' // the digest is in the replay cache
  // authentication and decoding, per door
  | 'hmac' // HMAC mismatch: wrong spa_hmac_key_base64 or spa_hmac_digest_type
  | 'decrypt' // HMAC right, decryption failed: wrong spa_key_base64
  | 'format' // decrypted plaintext malformed
  | 'digest' // inner digest wrong or of unknown length
  // policy, after authentication
  | 'replay-full' // replay cache full of entries inside the age window (fail closed)
  | 'stale' // timestamp more than 120 s in the past
  | 'future' // timestamp more than 120 s in the future
  | 'require-source' // allow IP 0.0.0.0 and spa_require_source_address
  | 'nat' // NAT access message: not supported
  | 'command' // command message: not supported
  | 'port'; // a requested proto/port not in spa_open_ports

export interface SpaRefusal {
  ok: false;
  code: SpaRefusalCode;
  /** One sentence for the log; names no key. May name the packet source and requested ports. */
  reason: string;
}

/** What to open for an accepted packet: one firewalld rich rule per port, all with `timeout`. */
export interface SpaGrant {
  /** Door (section) name. */
  door: string;
  /** Address to open for: the message's allow IP, or the packet's source for `0.0.0.0`. Canonical text. */
  address: string;
  family: 4 | 6;
  /** Requested ports, de-duplicated, in request order. */
  ports: SpaPortSpec[];
  /** Seconds: min(client timeout, spa_max_timeout), or cmd_timeout when the packet asks for none. */
  timeout: number;
}

export function refuse(code: SpaRefusalCode, reason: string): SpaRefusal {
  return { ok: false, code, reason };
}
