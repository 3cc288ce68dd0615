/**
 * CIDR blocks for `spa_source`: parse and match against a packet's source.
 *
 * Hand-written on purpose (a dozen lines over the project's strict inet_pton
 * parser) instead of node:net's BlockList: the door keeps plain, cloneable
 * data (SpaCidr) that can cross to the capture process, and matching IPv4
 * against IPv4 and IPv6 against IPv6 only (no IPv4-mapped magic) is explicit.
 */
import { formatAddress, parseAddress } from '../decode/address';
import type { SpaCidr } from '../model';

export type { SpaCidr } from '../model';

/**
 * `203.0.113.0/24`, `2001:db8::/32` or a bare address (a /32 or /128).
 * @returns the canonical block (host bits cleared) and whether host bits were set, or an error text.
 */
export function parseCidr(text: string): { cidr: SpaCidr; hostBitsSet: boolean } | { error: string } {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const parsed = parseAddress(addrText);
  if (parsed === undefined) return { error: `"${addrText}" is not an IPv4 or IPv6 address` };
  const max = parsed.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max)
      return { error: `prefix length "/${p}" must be 0..${max}` };
    prefix = Number(p);
  }
  const masked = Buffer.from(parsed.bytes);
  maskBytes(masked, prefix);
  return {
    cidr: { family: parsed.family, address: formatAddress(masked, 0, parsed.family), prefix },
    hostBitsSet: !masked.equals(parsed.bytes),
  };
}

/** `a.b.c.d/n` text of a block. */
export function cidrText(c: SpaCidr): string {
  return `${c.address}/${c.prefix}`;
}

/** Whether the address `addr` (text) lies in `cidr`. An unparsable address matches nothing. */
export function cidrContains(cidr: SpaCidr, addr: string): boolean {
  const a = parseAddress(addr);
  if (a === undefined || a.family !== cidr.family) return false;
  const net = parseAddress(cidr.address);
  if (net === undefined) return false;
  maskBytes(a.bytes, cidr.prefix);
  return a.bytes.equals(net.bytes);
}

/** `sources` empty means any address. */
export function sourceAllowed(sources: readonly SpaCidr[], addr: string): boolean {
  return sources.length === 0 || sources.some((c) => cidrContains(c, addr));
}

function maskBytes(b: Buffer, prefix: number): void {
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    b[i] = b[i] & ((0xff << (8 - bits)) & 0xff);
  }
}
