/**
 * Which interface to listen on when neither `-i` nor `Interface` names one:
 * `eth0` if it exists (knockd's default), else the interface of the default
 * route (what a RHEL server with `eno1` and no `eth0` wants), read from the
 * kernel's routing tables in /proc (this network namespace's): IPv4 first,
 * then IPv6; among several default routes the lowest metric wins.
 */
import { existsSync, readFileSync } from 'node:fs';

/** Route flags (linux/route.h, linux/ipv6_route.h). */
const RTF_UP = 0x0001;
const RTF_REJECT = 0x0200;

const IFNAME = /^[^\s/]{1,15}$/;

interface Candidate {
  dev: string;
  metric: number;
}

function best(c: Candidate[]): string | undefined {
  let b: Candidate | undefined;
  for (const x of c) if (b === undefined || x.metric < b.metric) b = x;
  return b?.dev;
}

/**
 * The default-route interface in /proc/net/route text (header line, then
 * `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, hex fields in
 * host byte order), or undefined.
 */
export function defaultRoute4(text: string): string | undefined {
  const c: Candidate[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [dev, dest, , flags, , , metric, mask] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const fl = parseInt(flags, 16);
    if (!IFNAME.test(dev) || dev === 'lo' || parseInt(dest, 16) !== 0 || parseInt(mask, 16) !== 0) continue;
    if (!(fl & RTF_UP) || fl & RTF_REJECT) continue;
    const m = Number(metric);
    c.push({ dev, metric: Number.isFinite(m) ? m : Infinity });
  }
  return best(c);
}

/**
 * The default-route interface in /proc/net/ipv6_route text (no header;
 * `dest plen src plen nexthop metric refcnt use flags dev`, hex), or
 * undefined. The kernel's unreachable default on `lo` is skipped.
 */
export function defaultRoute6(text: string): string | undefined {
  const c: Candidate[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, plen, , , , metric, , , flags, dev] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const fl = parseInt(flags, 16);
    if (!IFNAME.test(dev) || dev === 'lo' || !/^0{32}$/.test(dest) || parseInt(plen, 16) !== 0) continue;
    if (!(fl & RTF_UP) || fl & RTF_REJECT) continue;
    const m = parseInt(metric, 16);
    c.push({ dev, metric: Number.isFinite(m) ? m : Infinity });
  }
  return best(c);
}

export interface Sources {
  /** Whether an interface exists (default: /sys/class/net/<name>). */
  exists?: (name: string) => boolean;
  /** A /proc file's text, or undefined if unreadable. */
  read?: (path: string) => string | undefined;
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** The interface of the default route (IPv4, else IPv6), or undefined. */
export function defaultRouteInterface(src: Sources = {}): string | undefined {
  const read = src.read ?? readText;
  const v4 = read('/proc/net/route');
  const dev4 = v4 !== undefined ? defaultRoute4(v4) : undefined;
  if (dev4 !== undefined) return dev4;
  const v6 = read('/proc/net/ipv6_route');
  return v6 !== undefined ? defaultRoute6(v6) : undefined;
}

export interface Choice {
  iface: string;
  /** Why this one, when it was not given: a line for the log. */
  note?: string;
  /** The note is a warning (nothing better than waiting for eth0). */
  warn?: boolean;
}

/**
 * The interface to listen on: `given` (from `-i` or `Interface`) if any,
 * else `eth0` if it exists, else the default route's, else `eth0` (waited for).
 */
export function chooseInterface(given: string | undefined, src: Sources = {}): Choice {
  if (given !== undefined) return { iface: given };
  const exists = src.exists ?? ((name: string) => existsSync(`/sys/class/net/${name}`));
  if (exists('eth0')) return { iface: 'eth0' };
  const dev = defaultRouteInterface(src);
  if (dev !== undefined)
    return { iface: dev, note: `no -i given and no eth0: listening on ${dev}, the default-route interface` };
  return {
    iface: 'eth0',
    warn: true,
    note: 'no -i given, no eth0 and no default route: waiting for eth0 (name the interface with -i, e.g. in /etc/sysconfig/knockd)',
  };
}
