/**
 * The decrypted SPA plaintext (fwknop's fko_decode.c), parsed and validated
 * field by field:
 *
 *   rand:user:ts:version:type:message[:nat][:server_auth][:client_timeout]:digest
 *
 * Every base64 field is standard base64 without `=`. The digest is a hash of
 * the text before the last `:`, its type inferred from its length (SHA-2 is
 * tried before SHA-3 for the ambiguous 43 and 86). Pure; no I/O.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import { parseAddress } from '../decode/address';
import { refuse, SpaMessageType } from './types';
import type { SpaAccessSpec, SpaDigestType, SpaMessage, SpaRefusal } from './types';

/** fwknop's limits on encoded field lengths. */
const MAX_USER_CHARS = 64;
const MAX_TIMESTAMP_CHARS = 12;
const MAX_VERSION_CHARS = 8;
const MAX_MESSAGE_CHARS = 256;
const MAX_NAT_CHARS = 256;
const MAX_SERVER_AUTH_CHARS = 256;
/** Largest client timeout we take (fwknop keeps it in an int). */
const MAX_CLIENT_TIMEOUT = 0x7fffffff;

const DIGITS16 = /^[0-9]{16}$/;
const B64 = /^[A-Za-z0-9+/]+$/;
const TIMESTAMP = /^(?:0|[1-9][0-9]*)$/;
const VERSION = /^[0-9A-Za-z._-]+$/;
const TYPE = /^[0-6]$/;
const TIMEOUT = /^(?:0|[1-9][0-9]{0,9})$/;
const PROTO_PORT = /^(tcp|udp|icmp|none)\/(0|[1-9][0-9]{0,4})$/;
/** Username characters fwknop refuses, plus anything but printable ASCII (controls, DEL, non-ASCII). */
const BAD_USER = /["/\\[\]:;|=,+*?<>]|[^\x20-\x7e]/;

/** Digest types by field length; SHA-2 first. */
const DIGESTS_BY_LENGTH = new Map<number, readonly { type: SpaDigestType; hash: string }[]>([
  [22, [{ type: 'md5', hash: 'md5' }]],
  [27, [{ type: 'sha1', hash: 'sha1' }]],
  [
    43,
    [
      { type: 'sha256', hash: 'sha256' },
      { type: 'sha3_256', hash: 'sha3-256' },
    ],
  ],
  [64, [{ type: 'sha384', hash: 'sha384' }]],
  [
    86,
    [
      { type: 'sha512', hash: 'sha512' },
      { type: 'sha3_512', hash: 'sha3-512' },
    ],
  ],
]);

/** Extra fields (after the message, before the digest) each type has. */
function extraFieldsAllowed(type: SpaMessageType, extra: number): boolean {
  switch (type) {
    case SpaMessageType.Command:
    case SpaMessageType.Access:
      return extra === 0 || extra === 1; // optional server_auth
    case SpaMessageType.NatAccess:
    case SpaMessageType.ClientTimeoutAccess:
    case SpaMessageType.LocalNatAccess:
      return extra === 1;
    case SpaMessageType.ClientTimeoutNatAccess:
    case SpaMessageType.ClientTimeoutLocalNatAccess:
      return extra === 2;
  }
}

/** Standard base64 without `=` whose length is possible (not 1 mod 4), decoded. */
function b64Field(s: string, max: number): Buffer | undefined {
  if (s.length === 0 || s.length > max || s.length % 4 === 1 || !B64.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}

/** Printable ASCII (space included) only. */
function printable(b: Buffer): string | undefined {
  for (const c of b) if (c < 0x20 || c > 0x7e) return undefined;
  return b.toString('latin1');
}

/** Base64 of a digest without `=`, compared as text in constant time. */
function digestMatches(hash: string, data: string, expected: string): boolean {
  const mine = Buffer.from(createHash(hash).update(data, 'latin1').digest('base64').replace(/=+$/, ''), 'latin1');
  const theirs = Buffer.from(expected, 'latin1');
  return mine.length === theirs.length && timingSafeEqual(mine, theirs);
}

const bad = (what: string): SpaRefusal => refuse('format', `malformed SPA message: ${what}`);

/** Parses the text after decryption (already known to be printable ASCII starting with 16 digits and ":"). */
export function parseSpaPlaintext(text: string): { ok: true; message: SpaMessage } | SpaRefusal {
  const lastColon = text.lastIndexOf(':');
  if (lastColon < 0) return bad('no fields');
  const fields = text.slice(0, lastColon).split(':');
  // rand, user, ts, version, type, message (+ extra fields); at least 6 ':' in all.
  if (fields.length < 6) return bad(`${fields.length + 1} fields, at least 7 expected`);

  // The digest first, as fwknop does.
  const digestField = text.slice(lastColon + 1);
  const candidates = DIGESTS_BY_LENGTH.get(digestField.length);
  if (candidates === undefined || !B64.test(digestField))
    return refuse('digest', 'SPA message digest has an unknown length or is not base64');
  const body = text.slice(0, lastColon);
  const hit = candidates.find((c) => digestMatches(c.hash, body, digestField));
  if (hit === undefined) return refuse('digest', 'SPA message digest does not match its contents');

  const [rand, userB64, ts, version, typeText, msgB64, ...extra] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
    ...string[],
  ];
  if (!DIGITS16.test(rand)) return bad('random value is not 16 digits');

  const userBytes = b64Field(userB64, MAX_USER_CHARS);
  const username = userBytes === undefined ? undefined : printable(userBytes);
  if (username === undefined || username === '' || BAD_USER.test(username)) return bad('invalid username field');

  if (ts.length > MAX_TIMESTAMP_CHARS || !TIMESTAMP.test(ts)) return bad('invalid timestamp');
  const timestamp = Number(ts);

  if (version.length === 0 || version.length > MAX_VERSION_CHARS || !VERSION.test(version))
    return bad('invalid version');
  if (!TYPE.test(typeText)) return bad(`unknown message type "${typeText.slice(0, 8)}"`);
  const type = Number(typeText) as SpaMessageType;
  if (!extraFieldsAllowed(type, extra.length)) return bad(`wrong number of fields for message type ${type}`);

  const msgBytes = b64Field(msgB64, MAX_MESSAGE_CHARS);
  const msg = msgBytes === undefined ? undefined : printable(msgBytes);
  if (msg === undefined) return bad('invalid message field');
  const comma = msg.indexOf(',');
  if (comma < 0) return bad('message has no "<allow IP>," part');
  const ipText = msg.slice(0, comma);
  const ip = parseAddress(ipText);
  if (ip === undefined || ip.family !== 4) return bad('allow IP is not a dotted-quad IPv4 address');
  const rest = msg.slice(comma + 1);

  const kind: SpaMessage['kind'] =
    type === SpaMessageType.Command
      ? 'command'
      : type === SpaMessageType.Access || type === SpaMessageType.ClientTimeoutAccess
        ? 'access'
        : 'nat';
  const access: SpaAccessSpec[] = [];
  if (kind === 'command') {
    if (rest === '') return bad('empty command');
  } else {
    for (const item of rest.split(',')) {
      const m = PROTO_PORT.exec(item);
      if (m === null || Number(m[2]) > 65535) return bad('access list is not proto/port[,proto/port...]');
      access.push({ proto: m[1] as SpaAccessSpec['proto'], port: Number(m[2]) });
    }
  }

  const message: SpaMessage = {
    random: rand,
    username,
    timestamp,
    version,
    type,
    kind,
    allowIp: ipText,
    access,
    digestType: hit.type,
  };

  // Extra fields: NAT first, then server_auth (types 0/1 only), the client timeout always last.
  let next = 0;
  if (kind === 'nat') {
    const natBytes = b64Field(extra[next++], MAX_NAT_CHARS);
    const nat = natBytes === undefined ? undefined : printable(natBytes);
    if (nat === undefined || !/^[^,]+,[0-9]{1,5}$/.test(nat)) return bad('invalid NAT access field');
    message.nat = nat;
  } else if ((type === SpaMessageType.Command || type === SpaMessageType.Access) && extra.length === 1) {
    if (b64Field(extra[next++], MAX_SERVER_AUTH_CHARS) === undefined) return bad('invalid server_auth field');
  }
  if (
    type === SpaMessageType.ClientTimeoutAccess ||
    type === SpaMessageType.ClientTimeoutNatAccess ||
    type === SpaMessageType.ClientTimeoutLocalNatAccess
  ) {
    const t = extra[next++];
    if (!TIMEOUT.test(t) || Number(t) > MAX_CLIENT_TIMEOUT) return bad('invalid client timeout');
    message.clientTimeout = Number(t);
  }
  return { ok: true, message };
}
