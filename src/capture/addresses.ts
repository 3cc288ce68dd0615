/** The interface's own addresses, as canonical text (knockd's "myips"). */
import { existsSync, readFileSync } from 'node:fs';
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

/**
 * The kernel says the link is down (`operstate` down or lowerlayerdown; a
 * virtual device that does not know says unknown, taken as up). A capture
 * socket on it gets an error at once, and the capture process cannot open a
 * new one: the daemon waits for the link instead, and opens it then.
 */
export function linkDown(iface: string): boolean {
  if (iface === ANY || iface.includes('/') || iface === '.' || iface === '..') return false;
  try {
    const state = readFileSync(`/sys/class/net/${iface}/operstate`, 'utf8').trim();
    return state === 'down' || state === 'lowerlayerdown';
  } catch {
    return false;
  }
}

/** libpcap's Linux pseudo-device that captures on every interface (cooked capture, LINKTYPE_LINUX_SLL). */
export const ANY = 'any';

function interfaceExists(iface: string): boolean {
  // networkInterfaces() lists only interfaces with an address; /sys knows the rest.
  return !iface.includes('/') && iface !== '.' && iface !== '..' && existsSync(`/sys/class/net/${iface}`);
}
