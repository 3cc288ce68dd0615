/**
 * Knock sources that can never be a real client: no rule and no command is
 * ever made for them. A spoofed packet can carry any source address; these
 * are the ones whose grant would open the firewall to something else than
 * one remote host (the unspecified address, loopback, multicast, broadcast)
 * or to the server itself.
 */
import { networkInterfaces } from 'node:os';
import { canonicalAddress, parseAddress } from '../decode/address';

/** The host's own addresses and the IPv4 broadcast address of each of its subnets. */
export interface HostAddresses {
  own: ReadonlySet<string>;
  broadcasts: ReadonlySet<string>;
}

/** Read now from the kernel (getifaddrs): every interface, not only the one we listen on. */
export function hostAddresses(): HostAddresses {
  const own = new Set<string>();
  const broadcasts = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const addr = canonicalAddress(a.address.replace(/%.*$/, ''));
      if (addr === undefined) continue;
      own.add(addr);
      if (a.family === 'IPv4' && a.cidr) {
        const prefix = Number(a.cidr.split('/')[1]);
        if (prefix < 31) {
          const ip = parseAddress(addr)!.bytes.readUInt32BE(0);
          const host = prefix === 0 ? 0xffffffff : 0xffffffff >>> prefix;
          const b = Buffer.alloc(4);
          b.writeUInt32BE((ip | host) >>> 0);
          broadcasts.add(b.join('.'));
        }
      }
    }
  }
  return { own, broadcasts };
}

/** Why `src` (canonical text) cannot be a knocker, or undefined when it can. */
export function impossibleSource(src: string, host: HostAddresses): string | undefined {
  const p = parseAddress(src);
  if (p === undefined) return 'not an IP address';
  let v4: Buffer | undefined = p.family === 4 ? p.bytes : undefined;
  if (p.family === 6) {
    const b = p.bytes;
    const zeros = (n: number): boolean => b.subarray(0, n).every((x) => x === 0);
    if (zeros(16)) return 'the unspecified address';
    if (zeros(15) && b[15] === 1) return 'loopback';
    if (b[0] === 0xff) return 'multicast';
    if (zeros(10) && b[10] === 0xff && b[11] === 0xff) v4 = b.subarray(12); // IPv4-mapped: judge the IPv4 inside
  }
  if (v4 !== undefined) {
    const [a] = v4;
    if (a === 0) return 'the unspecified address (0.0.0.0/8)';
    if (a === 127) return 'loopback';
    if (a >= 224 && a <= 239) return 'multicast';
    if (v4.every((x) => x === 255)) return 'the broadcast address';
    if (a >= 240) return 'reserved (240.0.0.0/4)';
    if (host.broadcasts.has(v4.join('.'))) return 'a subnet broadcast address of this host';
  }
  if (host.own.has(src)) return "one of this host's own addresses";
  return undefined;
}
