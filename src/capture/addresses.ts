/** The interface's own addresses, as canonical text (knockd's "myips"). */
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { canonicalAddress } from '../decode/address';

export interface InterfaceAddresses {
  /** Whether the interface exists at all. */
  exists: boolean;
  addrs: string[];
}

/**
 * Addresses of `iface` (IPv6 ones dropped when `ipv4Only`), zone ids (`%eth0`)
 * removed. `any` (libpcap's pseudo-device for all interfaces) has every
 * address of every interface.
 */
export function interfaceAddresses(iface: string, ipv4Only = false): InterfaceAddresses {
  const all = networkInterfaces();
  const list = iface === ANY ? Object.values(all).flatMap((l) => l ?? []) : all[iface];
  if (list === undefined) return { exists: interfaceExists(iface), addrs: [] };
  const addrs = new Set<string>();
  for (const a of list) {
    if (ipv4Only && a.family !== 'IPv4') continue;
    const c = canonicalAddress(a.address.replace(/%.*$/, ''));
    if (c !== undefined) addrs.add(c);
  }
  return { exists: true, addrs: [...addrs].sort() };
}

/** libpcap's Linux pseudo-device that captures on every interface (cooked capture, LINKTYPE_LINUX_SLL). */
export const ANY = 'any';

function interfaceExists(iface: string): boolean {
  // networkInterfaces() lists only interfaces with an address; /sys knows the rest.
  return !iface.includes('/') && iface !== '.' && iface !== '..' && existsSync(`/sys/class/net/${iface}`);
}
