/**
 * The lab's network namespaces: names (the creator's pid is in each, so
 * leftovers of dead runs are found), the veth pair(s) and addresses, the
 * machine's preconditions, and removal of namespaces and temp dirs.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { IP, pidAlive, runCmd, runSync, waitFor, type Procs } from './proc';
import { SSHD } from './sshd';
import type { Lab } from './types';

/** Namespace names: kn-<pid>-<6 hex>-s / -c. */
export const NS_PREFIX = 'kn-';
const NS_RE = /^kn-(\d+)-([0-9a-f]{6})-[sc]$/;
/** Temp dirs: <os.tmpdir()>/knlab-<pid>-<6 hex>-XXXXXX. */
export const TMP_PREFIX = 'knlab-';
const TMP_RE = /^knlab-(\d+)-[0-9a-f]{6}-/;

/** What setupNetwork() creates. */
export type Topology = Pick<
  Lab,
  | 'serverNs'
  | 'clientNs'
  | 'serverIf'
  | 'clientIf'
  | 'serverAddr'
  | 'clientAddr'
  | 'serverAddr6'
  | 'clientAddr6'
  | 'extraClientAddrs'
  | 'serverIf2'
  | 'clientIf2'
  | 'serverAddr2'
  | 'clientAddr2'
  | 'prefix4'
  | 'prefix6'
>;

/**
 * Throw a clear Error unless we run as root, `ip netns` works and the tools
 * the lab needs are installed. Tests call this first so that they FAIL
 * (never silently skip) on an unsuitable machine.
 */
export function requireRoot(): void {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid !== 0) {
    throw new Error(`the network-namespace lab must run as root (uid 0); current uid is ${uid}`);
  }
  const r = runSync([IP, 'netns', 'list']);
  if (r.code !== 0) {
    throw new Error(`'ip netns list' is not usable (exit ${String(r.code)}): ${r.stderr.trim()}`);
  }
  const tools = ['dbus-daemon', 'firewalld', 'firewall-cmd', 'ssh-keygen', 'nc', 'unshare'];
  const pathDirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  const missing = tools.filter(
    (t) =>
      !pathDirs.some((d) => {
        try {
          fs.accessSync(path.join(d, t), fs.constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
  );
  try {
    fs.accessSync(SSHD, fs.constants.X_OK);
  } catch {
    missing.push(SSHD);
  }
  if (missing.length > 0) throw new Error(`lab prerequisites missing from PATH: ${missing.join(', ')}`);
}

/** Names of all network namespaces (`ip netns list` prints "name (id: N)"). */
export async function listNetns(): Promise<string[]> {
  const r = await runCmd([IP, 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** PIDs of all processes living in a namespace. */
export function netnsPidsSync(ns: string): number[] {
  const r = runSync([IP, 'netns', 'pids', ns]);
  return r.stdout
    .split('\n')
    .map((l) => Number.parseInt(l.trim(), 10))
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

/** SIGKILL every process in `ns`, then delete it. Best effort, synchronous. */
export function destroyNetnsSync(ns: string): string | null {
  for (const pid of netnsPidsSync(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (!fs.existsSync(`/run/netns/${ns}`)) return null;
  const r = runSync([IP, 'netns', 'del', ns]);
  return r.code === 0 ? null : `ip netns del ${ns}: ${r.stderr.trim()}`;
}

/**
 * Delete namespaces (and temp dirs) created by lab runs whose creating
 * process no longer exists. Labs of live processes are never touched.
 */
export async function cleanupStale(): Promise<void> {
  for (const ns of await listNetns()) {
    const m = NS_RE.exec(ns);
    if (m && !pidAlive(Number(m[1]))) destroyNetnsSync(ns);
  }
  const tmp = os.tmpdir();
  let entries: string[] = [];
  try {
    entries = await fsp.readdir(tmp);
  } catch {
    return;
  }
  for (const e of entries) {
    const m = TMP_RE.exec(e);
    if (m && !pidAlive(Number(m[1]))) {
      await fsp.rm(path.join(tmp, e), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** Create both namespaces, the veth pair and all addresses of `t`. */
export async function setupNetwork(procs: Procs, t: Topology, ipv6: boolean): Promise<void> {
  await procs.mustRun([IP, 'netns', 'add', t.serverNs]);
  await procs.mustRun([IP, 'netns', 'add', t.clientNs]);
  // The veth pair is created *inside* the server namespace with its peer
  // going straight into the client namespace: the host namespace never
  // sees either interface. No routes besides the connected ones.
  const server = [
    'link set lo up',
    `link add ${t.serverIf} type veth peer name ${t.clientIf} netns ${t.clientNs}`,
    `addr add ${t.serverAddr}/${t.prefix4} dev ${t.serverIf}`,
    ...(ipv6 ? [`addr add ${t.serverAddr6}/${t.prefix6} dev ${t.serverIf} nodad`] : []),
    `link set ${t.serverIf} up`,
    ...(t.serverIf2
      ? [
          `link add ${t.serverIf2} type veth peer name ${t.clientIf2} netns ${t.clientNs}`,
          `addr add ${t.serverAddr2}/${t.prefix4} dev ${t.serverIf2}`,
          `link set ${t.serverIf2} up`,
        ]
      : []),
  ];
  await procs.mustRun([IP, '-n', t.serverNs, '-batch', '-'], server.join('\n') + '\n');
  const client = [
    'link set lo up',
    `addr add ${t.clientAddr}/${t.prefix4} dev ${t.clientIf}`,
    ...t.extraClientAddrs.map((a) => `addr add ${a}/${t.prefix4} dev ${t.clientIf}`),
    ...(ipv6 ? [`addr add ${t.clientAddr6}/${t.prefix6} dev ${t.clientIf} nodad`] : []),
    `link set ${t.clientIf} up`,
    ...(t.clientIf2 ? [`addr add ${t.clientAddr2}/${t.prefix4} dev ${t.clientIf2}`, `link set ${t.clientIf2} up`] : []),
  ];
  await procs.mustRun([IP, '-n', t.clientNs, '-batch', '-'], client.join('\n') + '\n');
  // Carrier/operstate follow a moment after `link set up` (linkwatch runs
  // deferred); wait so the first packet of a test is never sent on a link
  // still reported NO-CARRIER.
  const t0 = Date.now();
  await waitFor(
    async () => {
      for (const [ns, dev] of [
        [t.serverNs, t.serverIf],
        [t.clientNs, t.clientIf],
        ...(t.serverIf2
          ? ([
              [t.serverNs, t.serverIf2],
              [t.clientNs, t.clientIf2],
            ] as const)
          : []),
      ] as const) {
        const r = await runCmd([IP, '-n', ns, '-o', 'link', 'show', 'dev', dev]);
        if (!/\bstate UP\b/.test(r.stdout)) return false;
      }
      return true;
    },
    5_000,
    20,
  );
  procs.log(`veth operstate UP after ${Date.now() - t0} ms`);
}
