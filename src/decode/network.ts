/**
 * A knocker's network (`firewalld_source_prefix` / `firewalld_source_prefix6`):
 * the canonical text of the network of a given prefix length that holds an
 * address (10.1.2.3 and 24: "10.1.2.0/24"; 2001:db8:1:2:a:b:c:d and 64:
 * "2001:db8:1:2::/64"), and the check that a text is such a network. A full
 * length prefix (32, 128) is the address itself, without "/n".
 */
import { formatAddress, parseAddress } from './address';

export const FAMILY_BITS = { 4: 32, 6: 128 } as const;
/** Prefixes wider than these open to many hosts: `--check` warns. */
export const WIDE_PREFIX = { 4: 16, 6: 48 } as const;

/** The canonical network of `prefix` bits holding `address` (any valid text), or undefined if not an address or a bad prefix. */
export function canonicalNetwork(address: string, prefix: number): string | undefined {
  const a = parseAddress(address);
  if (a === undefined || !Number.isInteger(prefix) || prefix < 1 || prefix > FAMILY_BITS[a.family]) return undefined;
  const text = (bytes: Buffer) => formatAddress(bytes, 0, a.family);
  if (prefix === FAMILY_BITS[a.family]) return text(a.bytes);
  for (let bit = prefix; bit < a.bytes.length * 8; bit++) a.bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
  return `${text(a.bytes)}/${prefix}`;
}

/** Is `text` a canonical address, or a canonical network ("a/n", host bits zero, n below the full length)? */
export function isCanonicalSource(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0)
    return parseAddress(text) !== undefined && canonicalNetwork(text, FAMILY_BITS[text.includes(':') ? 6 : 4]) === text;
  const prefix = text.slice(slash + 1);
  if (!/^[1-9][0-9]{0,2}$/.test(prefix)) return false;
  return canonicalNetwork(text.slice(0, slash), Number(prefix)) === text;
}

/** The prefix length of a source text (the family's full length for a plain address). */
export function sourcePrefix(text: string): number {
  const slash = text.indexOf('/');
  return slash < 0 ? FAMILY_BITS[text.includes(':') ? 6 : 4] : Number(text.slice(slash + 1));
}
