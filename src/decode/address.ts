/**
 * IP address text <-> bytes.
 *
 * `formatAddress` produces exactly what `inet_ntop(3)` (glibc, and libuv's
 * copy of the same ISC code, which Node uses for `remoteAddress`,
 * `net.SocketAddress`, ...) produces, so that addresses we print and compare
 * look like those of every other tool, knockd's %IP% included:
 *  - IPv4: dotted quad;
 *  - IPv6: RFC 5952 form (lower-case hex, no leading zeros, the first longest
 *    run of two or more zero groups written `::`), with the last 32 bits in
 *    dotted-quad form for IPv4-mapped addresses (`::ffff:192.0.2.1`) and, as
 *    inet_ntop does, for IPv4-compatible ones (`::192.0.2.1`: the first 96
 *    bits zero and the seventh group non-zero).
 *
 * `parseAddress` is a strict parser with the grammar of `inet_pton(3)`:
 * no leading zeros in IPv4 octets, 1..4 hex digits per IPv6 group, at most one
 * `::` standing for at least one group, an optional dotted-quad tail, no zone
 * id, no surrounding whitespace.
 */

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Format the 4- or 16-byte address at `buf[off]`.
 * @throws RangeError if the address does not lie within `buf`.
 */
export function formatAddress(buf: Buffer, off: number, family: 4 | 6): string {
  const size = family === 4 ? 4 : 16;
  if (!Number.isInteger(off) || off < 0 || off + size > buf.length) {
    throw new RangeError(`address at offset ${off} (IPv${family}) lies outside a ${buf.length}-byte buffer`);
  }
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;

  // Find the first longest run of zero groups.
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (buf[off + 2 * i] === 0 && buf[off + 2 * i + 1] === 0) {
      if (curBase < 0) {
        curBase = i;
        curLen = 1;
      } else {
        curLen++;
      }
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
    } else {
      curBase = -1;
    }
  }
  if (bestLen < 2) bestBase = -1; // a lone zero group is not compressed

  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestBase) {
      text += ':'; // the first of the two colons of "::"; the second follows below
      i += bestLen - 1;
      if (i === 7) text += ':';
      continue;
    }
    if (i > 0) text += ':';
    // IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d) address.
    if (
      i === 6 &&
      bestBase === 0 &&
      (bestLen === 6 || (bestLen === 5 && buf[off + 10] === 0xff && buf[off + 11] === 0xff))
    ) {
      text += `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
      break;
    }
    text += ((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]).toString(16);
  }
  return text;
}

/**
 * Parse an IPv4 dotted quad or an IPv6 address.
 * @returns the family and the 4 or 16 address bytes, or undefined if `text` is not a valid address.
 */
export function parseAddress(text: string): { family: 4 | 6; bytes: Buffer } | undefined {
  if (text.includes(':')) {
    const bytes = Buffer.alloc(16);
    return parseIpv6(text, bytes) ? { family: 6, bytes } : undefined;
  }
  const bytes = Buffer.alloc(4);
  return parseIpv4(text, bytes, 0) ? { family: 4, bytes } : undefined;
}

/** Parse then format: the canonical text of an address, or undefined if it is not one. */
export function canonicalAddress(text: string): string | undefined {
  const parsed = parseAddress(text);
  return parsed === undefined ? undefined : formatAddress(parsed.bytes, 0, parsed.family);
}

/** Parse a dotted quad into `out[off..off+4)`; false if invalid. */
function parseIpv4(text: string, out: Buffer, off: number): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!DEC_OCTET.test(part)) return false;
    const value = Number(part);
    if (value > 255) return false;
    out[off + i] = value;
  }
  return true;
}

/** Parse an IPv6 address into the 16-byte `out`; false if invalid. */
function parseIpv6(text: string, out: Buffer): boolean {
  const gap = text.indexOf('::');
  if (gap >= 0 && text.indexOf('::', gap + 1) >= 0) return false; // two "::" (or ":::")

  // The groups before and after "::" (all of them if there is none).
  const head = gap >= 0 ? text.slice(0, gap) : text;
  const tail = gap >= 0 ? text.slice(gap + 2) : '';
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === '' ? [] : tail.split(':');

  // Fill 16-bit groups into a scratch array; an IPv4 tail, allowed only as the
  // very last part of the address, counts as two groups.
  const last = gap >= 0 ? tailParts : headParts;
  const groups: number[] = [];
  let headGroups = 0;
  for (const list of [headParts, tailParts]) {
    for (let i = 0; i < list.length; i++) {
      const part = list[i];
      if (HEX_GROUP.test(part)) {
        groups.push(parseInt(part, 16));
      } else if (list === last && i === list.length - 1 && part.includes('.')) {
        const v4 = Buffer.alloc(4);
        if (!parseIpv4(part, v4, 0)) return false;
        groups.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        return false; // empty group (stray ':'), bad digit, zone id, ...
      }
    }
    if (list === headParts) headGroups = groups.length;
  }

  if (gap < 0) {
    if (groups.length !== 8) return false;
  } else if (groups.length > 7) {
    return false; // "::" must stand for at least one zero group
  }

  // Groups after "::" go at the end; what lies between stays zero.
  const tailStart = 8 - (groups.length - headGroups);
  out.fill(0);
  for (let g = 0; g < groups.length; g++) {
    const slot = g < headGroups ? g : tailStart + (g - headGroups);
    out[2 * slot] = groups[g] >> 8;
    out[2 * slot + 1] = groups[g] & 0xff;
  }
  return true;
}
