/**
 * Network-namespace test lab for the knockd/firewalld daemon.
 *
 * `startLab()` builds a disposable, fully isolated test bed:
 *
 *   ┌──────────── server netns (kn-<pid>-<rand>-s) ────────────┐      ┌─ client netns (…-c) ─┐
 *   │ lo                                                       │      │ lo                   │
 *   │ ks<rand>  10.200.X.1/24  fd00:6b6e:X::1/64  ◄────veth────┼──────┼► kc<rand> .2 (+.3 …) │
 *   │ dbus-daemon (private "system" bus, unix:path=<tmp>/bus.sock)    │                      │
 *   │ firewalld --nofork --nopid (runtime only, private config dir)   │                      │
 *   │ sshd -D on :22                                           │      │                      │
 *   └──────────────────────────────────────────────────────────┘      └──────────────────────┘
 *
 * Nothing is ever started in, or configured on, the host network namespace:
 * the veth pair is created from inside the server namespace, every process is
 * launched through `ip netns exec`, there are no default routes, and firewalld
 * talks only to the private bus (its `DBUS_SYSTEM_BUS_ADDRESS` points at our
 * socket) and runs in a mount namespace of its own where a private copy of
 * /etc/firewalld is bind-mounted over /etc/firewalld, so not even a
 * `--permanent` call (tests make them on purpose) can modify the host's.
 *
 * Which firewalld: the host's, or with `KNLAB_FIREWALLD=bullseye|bookworm|
 * trixie|sid` (or LabOptions.firewalldRelease) that Debian release's, from a
 * cached root (test/lab/fw-roots.ts, built by fw-root.sh). It then runs
 * chrooted into a fresh overlay of the root (test/lab/fw-chroot.sh: the lab
 * dir appears as /run/knlab, the private /etc/firewalld copy is the root's),
 * in a private mount namespace that holds every one of those mounts and dies
 * with firewalld, so no cleanup can ever remove files through a live mount.
 * The lab bus then reads that release's own bus policy, and every firewall-cmd
 * the lab runs (firewallCmd(), execIn('server', ['firewall-cmd', …])) is that
 * release's, chrooted into a read-only view of the same root.
 *
 * Everything the helpers log goes to files in `lab.tmpDir` (lab.log,
 * dbus.log, firewalld.log, firewalld.console.log, sshd.log, spawn-*.log);
 * set KNLAB_KEEP_TMP=1 to keep that directory after stop() for post-mortems.
 *
 * Cleanup: `stop()` (idempotent) kills every process group it started, sweeps
 * any remaining process out of the namespaces, deletes both namespaces (which
 * destroys the veth pair) and removes tmpDir. A synchronous best-effort
 * cleanup also runs on process 'exit' and on SIGINT/SIGTERM/SIGHUP, and
 * `cleanupStale()` removes leftovers of runs whose creating process is dead
 * (the creator's pid is encoded in every namespace and temp-dir name).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { FW_CHROOT_SCRIPT, ensureFwRoot, firewalldChoice, needsRoot, rootPolicyDirs, type FwRoot } from './fw-roots';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface LabOptions {
  /** Number of additional IPv4 addresses on the client veth (.3, .4, …). Default 0. */
  extraClientAddrs?: number;
  /** Configure the IPv6 ULA addresses (and let sshd listen on ::). Default true. */
  ipv6?: boolean;
  /** Start OpenSSH sshd on port 22 in the server namespace. Default true. */
  sshd?: boolean;
  /** Start the private dbus-daemon + firewalld in the server namespace. Default true. */
  firewalld?: boolean;
  /** Pass `--debug=<level>` to firewalld (1..10); its log lands in tmpDir. Default: off. */
  firewalldDebug?: number;
  /**
   * A second veth pair between the namespaces (serverIf2/clientIf2, IPv4
   * 10.201.X.1 and .2, no IPv6), also in zone public: a server with two NICs.
   * Default false.
   */
  secondLink?: boolean;
  /**
   * Which firewalld: 'host' (the host's own), or a Debian release's from a
   * cached root (test/lab/fw-roots.ts): 'bullseye' (0.9.3), 'bookworm'
   * (1.3.3; the host's on a Debian 12 host), 'trixie' (2.3.1), 'sid' (2.5.x).
   * Default: the environment's KNLAB_FIREWALLD, else 'host'.
   */
  firewalldRelease?: string;
}

export interface ExecResult {
  /** Exit code, or null when the process was killed by a signal (e.g. on timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the command was killed because it exceeded `timeoutMs`. */
  timedOut: boolean;
}

export type LabNs = 'server' | 'client';

export interface ExecOptions {
  /** Kill the command (whole process group) after this many ms. Default 30000. */
  timeoutMs?: number;
  /** Written to the command's stdin (stdin is closed afterwards in any case). */
  input?: string;
}

export interface SshBannerOptions {
  /** Namespace to connect from. Default 'client' (use 'server' for loopback checks). */
  from?: LabNs;
  /** Target address. Default: lab.serverAddr. May be an IPv6 address. */
  host?: string;
  /** Target TCP port. Default 22. */
  port?: number;
  /** Local (source) address to bind in the client namespace, e.g. one of extraClientAddrs. */
  source?: string;
  /** Give up after this many ms (connect + first line). Default 1500. */
  timeoutMs?: number;
}

export interface Lab {
  /** Unique run id `<pid>-<6 hex>`; part of every name this lab creates. */
  id: string;
  /** Per-run temp directory (bus socket, configs, host key, logs). Removed by stop(). */
  tmpDir: string;
  serverNs: string;
  clientNs: string;
  serverIf: string;
  clientIf: string;
  serverAddr: string;
  clientAddr: string;
  /** Empty string when the lab was started with `ipv6: false`. */
  serverAddr6: string;
  /** Empty string when the lab was started with `ipv6: false`. */
  clientAddr6: string;
  /** Additional client IPv4 addresses (no prefix length), in order .3, .4, … */
  extraClientAddrs: string[];
  /** The second veth pair and its addresses (`secondLink`); empty strings without it. */
  serverIf2: string;
  clientIf2: string;
  serverAddr2: string;
  clientAddr2: string;
  /** Prefix length of the IPv4 test subnet (24) and of the IPv6 one (64). */
  prefix4: number;
  prefix6: number;
  /** `unix:path=<tmpDir>/bus.sock` (empty string when started with `firewalld: false`). */
  busAddress: string;
  /** process.env + DBUS_SYSTEM_BUS_ADDRESS=busAddress; used for everything the lab runs. */
  env: NodeJS.ProcessEnv;

  /** Run a command in a namespace; resolves {code, stdout, stderr}; never rejects on non-zero exit. */
  execIn(ns: LabNs, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Spawn a long-running process in a namespace (with the lab env, in its own
   * process group); stdout+stderr go to `logFile` (default: a file in tmpDir).
   * It is killed (whole process group, SIGTERM then SIGKILL) by stop().
   */
  spawnIn(ns: LabNs, argv: string[], opts?: { logFile?: string }): ChildProcess;
  /**
   * What firewalld runs: 'host', or the Debian release whose root it comes
   * from (LabOptions.firewalldRelease / KNLAB_FIREWALLD).
   */
  firewalldRelease: string;
  /** The running firewalld's version as its firewall-cmd prints it, e.g. "0.9.3" ('' without firewalld). */
  firewalldVersion: string;
  /**
   * firewall-cmd in the server ns with the lab env; resolves trimmed stdout; throws (with stderr) on non-zero exit.
   * With a release root it is that release's firewall-cmd (as is `execIn('server', ['firewall-cmd', …])`).
   */
  firewallCmd(...args: string[]): Promise<string>;
  /** The same firewall-cmd, never throwing: exit code, stdout, stderr (e.g. to type hand removals in many spellings). */
  firewallCmdRaw(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /**
   * Run a command in the server ns as uid/gid 65534 (nobody, no supplementary
   * groups) with DBUS_SYSTEM_BUS_ADDRESS set to the lab bus: a local user
   * without privileges (e.g. `dbus-send --system --type=signal …`). The bus
   * is reached through an abstract socket of the server namespace, so the
   * lab's temp dir stays root-only.
   */
  execAsNobody(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** `firewall-cmd --zone=<zone> --list-rich-rules`, one rule per entry. Default zone: public. */
  richRules(zone?: string): Promise<string[]>;
  /**
   * From the client namespace (or `from`): TCP-connect to host:port and read the first
   * line (the SSH banner). Resolves the line (without CR/LF), or null when
   * the connection was refused/rejected/timed out or closed before a line.
   */
  sshBanner(opts?: SshBannerOptions): Promise<string | null>;
  /**
   * Poll `fn` every `intervalMs` (default 100) until it resolves a truthy
   * value, which is returned. Exceptions thrown by `fn` count as "not yet";
   * on timeout throws an Error that includes the last exception, if any.
   */
  waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs: number, intervalMs?: number): Promise<T>;
  /** Add an extra address (CIDR, v4 or v6) to the server veth. */
  addServerAddress(cidr: string): Promise<void>;
  /** Remove an address previously added with addServerAddress(). */
  delServerAddress(cidr: string): Promise<void>;
  /** Stop firewalld (SIGTERM, SIGKILL after 10 s) and wait until it has exited. */
  stopFirewalld(): Promise<void>;
  /** Freeze (SIGSTOP) or thaw (SIGCONT) firewalld: a hung firewalld that keeps its bus name. */
  pauseFirewalld(paused: boolean): void;
  /**
   * The system bus itself goes away and comes back: firewalld stopped, the
   * dbus-daemon killed, a new one on the same socket path, firewalld started
   * on it (as a `systemctl restart dbus` does to a real server).
   */
  restartBus(): Promise<void>;
  /** (Re)start firewalld, wait until running, redo the zone setup (iface → public, no ssh service). */
  startFirewalld(): Promise<void>;
  /** Kill everything, delete namespaces (and thus the veth pair), remove tmpDir. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

/** Namespace names: kn-<pid>-<6 hex>-s / -c. */
const NS_PREFIX = 'kn-';
const NS_RE = /^kn-(\d+)-([0-9a-f]{6})-[sc]$/;
/** Temp dirs: <os.tmpdir()>/knlab-<pid>-<6 hex>-XXXXXX. */
const TMP_PREFIX = 'knlab-';
const TMP_RE = /^knlab-(\d+)-[0-9a-f]{6}-/;

const IP = 'ip';
const SSHD = '/usr/sbin/sshd';
const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2_000;
const FIREWALLD_START_TIMEOUT_MS = 30_000;
const FIREWALLD_STOP_TIMEOUT_MS = 10_000;
const SSHD_START_TIMEOUT_MS = 10_000;
const DBUS_START_TIMEOUT_MS = 10_000;
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_UNIX_PATH = 107;

/** Our own firewalld.conf for the private --system-config dir (Debian 12 defaults). */
const FIREWALLD_CONF = `# knlab private firewalld configuration (runtime-only test instance)
DefaultZone=public
CleanupOnExit=yes
CleanupModulesOnExit=no
Lockdown=no
IPv6_rpfilter=yes
IndividualCalls=no
LogDenied=off
FirewallBackend=nftables
FlushAllOnReload=yes
RFC3964_IPv4=yes
`;

/**
 * A release's own firewalld.conf with the lab's settings (FIREWALLD_CONF) for
 * every key the file names (set or commented out); keys a release does not
 * know are not added.
 */
export function releaseFirewalldConf(own: string): string {
  let out = own;
  for (const line of FIREWALLD_CONF.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (!m) continue;
    const re = new RegExp(`^[ \\t#]*${m[1]}=.*$`, 'm');
    if (re.test(out)) out = out.replace(re, line);
  }
  return `# knlab: the release's own firewalld.conf, the lab's settings for the keys it names\n${out}`;
}

/**
 * A system-type bus configuration (dbus's own system.conf defaults: nobody may
 * own names or call methods unless a policy file says so), listening on
 * `sockPath` and reading policy files from `includeDirs`.
 * `rootMayDoAnything` adds what the lab needs: root (firewalld, the daemon under
 * test, firewall-cmd) may own any name and call anything.
 */
export function systemBusConfig(
  sockPath: string,
  opts: { includeDirs: string[]; rootMayDoAnything: boolean; extraListen?: string[] },
): string {
  const root = opts.rootMayDoAnything
    ? `
  <!-- root (firewalld, the daemon under test, firewall-cmd) may own any name and call anything -->
  <policy user="root">
    <allow own="*"/>
    <allow send_type="method_call"/>
  </policy>`
    : '';
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${sockPath}</listen>${(opts.extraListen ?? []).map((a) => `\n  <listen>${a}</listen>`).join('')}
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>${root}
${opts.includeDirs.map((d) => `  <includedir>${d}</includedir>`).join('\n')}
</busconfig>
`;
}

/**
 * The lab bus: the path socket everything but execAsNobody() uses, plus an
 * abstract socket (`abstract`), reachable only from inside the server network
 * namespace and with no file permissions, for the unprivileged local user.
 */
function busConfig(sockPath: string, abstract: string, includeDirs: string[]): string {
  return systemBusConfig(sockPath, {
    includeDirs,
    rootMayDoAnything: true,
    extraListen: [`unix:abstract=${abstract}`],
  });
}

/**
 * Probe run with `node -e` in the client namespace by sshBanner().
 * argv: host port source timeoutMs. Prints the first line and exits 0,
 * or prints an error code on stderr and exits non-zero.
 */
const BANNER_PROBE = `
const net = require('node:net');
const [host, port, source, timeout] = process.argv.slice(1);
const opts = { host, port: Number(port) };
if (source) opts.localAddress = source;
let buf = '';
const done = (line, code, why) => {
  if (line !== null) process.stdout.write(line);
  if (why) process.stderr.write(why);
  process.exit(code);
};
setTimeout(() => done(null, 2, 'TIMEOUT'), Number(timeout));
const sock = net.connect(opts);
sock.setEncoding('latin1');
sock.on('data', (d) => {
  buf += d;
  const i = buf.indexOf('\\n');
  if (i >= 0) done(buf.slice(0, i).replace(/\\r$/, ''), 0, '');
});
sock.on('error', (e) => done(null, 1, e.code || String(e)));
sock.on('end', () => done(null, 3, 'EOF:' + JSON.stringify(buf)));
`;

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function errCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** True if a process with this pid exists (EPERM still means "exists"). */
function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM';
  }
}

/** Send a signal to a whole process group; ignore "no such process". */
function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // Group already gone (ESRCH) – nothing to do.
  }
}

/** Last `maxLines` lines of a file, or a note that it could not be read. */
function tailFile(file: string, maxLines = 40): string {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    return lines.slice(-maxLines).join('\n');
  } catch (e) {
    return `<cannot read ${file}: ${errMsg(e)}>`;
  }
}

/**
 * Run a command (no shell), collect output. Never rejects on non-zero exit;
 * rejects only if the executable cannot be spawned at all. The command runs in
 * its own process group so a timeout kills its descendants as well.
 */
function runCmd(
  argv: string[],
  opts: ExecOptions & { env?: NodeJS.ProcessEnv; track?: Set<ChildProcess> } = {},
): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('runCmd: empty argv'));
  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      detached: true,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    opts.track?.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin?.on('error', () => {
      /* EPIPE when the command does not read its input – irrelevant */
    });
    child.stdin?.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      opts.track?.delete(child);
      reject(new Error(`cannot run ${argv.join(' ')}: ${errMsg(e)}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      opts.track?.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Synchronous variant for exit hooks and requireRoot(); output as strings. */
function runSync(argv: string[], timeoutMs = 10_000): { code: number | null; stdout: string; stderr: string } {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return { code: null, stdout: '', stderr: 'empty argv' };
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? errMsg(r.error) : '') };
}

/** Shell-like rendering of an argv for log lines; very long arguments are abbreviated. */
function describe(argv: string[]): string {
  return argv
    .map((a) => (a.length > 120 ? `${a.slice(0, 40).trim()}…(${a.length} chars)` : a))
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}

// ---------------------------------------------------------------------------
// Preconditions & stale cleanup
// ---------------------------------------------------------------------------

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
async function listNetns(): Promise<string[]> {
  const r = await runCmd([IP, 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** PIDs of all processes living in a namespace. */
function netnsPidsSync(ns: string): number[] {
  const r = runSync([IP, 'netns', 'pids', ns]);
  return r.stdout
    .split('\n')
    .map((l) => Number.parseInt(l.trim(), 10))
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

/** SIGKILL every process in `ns`, then delete it. Best effort, synchronous. */
function destroyNetnsSync(ns: string): string | null {
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

// ---------------------------------------------------------------------------
// Process-wide safety net: exit / signal hooks
// ---------------------------------------------------------------------------

const activeLabs = new Set<LabImpl>();
let hooksInstalled = false;
const HOOK_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onExit(): void {
  for (const lab of [...activeLabs]) lab.destroySync();
}

function onSignal(sig: NodeJS.Signals): void {
  // If somebody else (a CLI, the test runner) also handles this signal, let
  // them drive the shutdown; the 'exit' hook remains the safety net.
  if (process.listenerCount(sig) > 1) return;
  onExit();
  uninstallHooks();
  process.kill(process.pid, sig); // re-raise with default disposition
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExit);
  for (const s of HOOK_SIGNALS) process.on(s, onSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', onExit);
  for (const s of HOOK_SIGNALS) process.off(s, onSignal);
}

// ---------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------

/** A long-running process started by the lab. */
interface Managed {
  name: string;
  child: ChildProcess;
  /** Resolves once the process has exited (or failed to spawn). */
  exited: Promise<void>;
  logFile: string;
}

class LabImpl implements Lab {
  readonly id: string;
  readonly tmpDir: string;
  readonly serverNs: string;
  readonly clientNs: string;
  readonly serverIf: string;
  readonly clientIf: string;
  readonly serverAddr: string;
  readonly clientAddr: string;
  readonly serverAddr6: string;
  readonly clientAddr6: string;
  readonly extraClientAddrs: string[];
  readonly serverIf2: string;
  readonly clientIf2: string;
  readonly serverAddr2: string;
  readonly clientAddr2: string;
  readonly prefix4 = 24;
  readonly prefix6 = 64;
  busAddress = '';
  readonly firewalldRelease: string;
  firewalldVersion = '';
  private dbusProc: Managed | undefined;
  env: NodeJS.ProcessEnv;
  /** The release root firewalld and firewall-cmd run from (undefined: the host's). */
  private readonly fwRoot: FwRoot | undefined;
  private firewalldStarts = 0;

  private readonly opts: Required<Omit<LabOptions, 'firewalldDebug' | 'firewalldRelease'>> & {
    firewalldDebug?: number;
  };
  /** The server-side interfaces (one per veth pair). */
  private get serverIfs(): string[] {
    return this.serverIf2 ? [this.serverIf, this.serverIf2] : [this.serverIf];
  }
  private readonly managed = new Set<Managed>();
  /** Short-lived execIn() children, killed at stop() if still running. */
  private readonly transient = new Set<ChildProcess>();
  private firewalldProc: Managed | undefined;
  private spawnCounter = 0;
  private stopping: Promise<void> | undefined;
  private destroyed = false;
  private readonly labLog: string;

  constructor(id: string, tmpDir: string, subnet: number, opts: LabOptions, release: string, fwRoot?: FwRoot) {
    const extra = opts.extraClientAddrs ?? 0;
    if (!Number.isInteger(extra) || extra < 0 || extra > 200) {
      throw new Error(`extraClientAddrs must be an integer in 0..200, got ${String(extra)}`);
    }
    this.opts = {
      extraClientAddrs: extra,
      ipv6: opts.ipv6 ?? true,
      sshd: opts.sshd ?? true,
      firewalld: opts.firewalld ?? true,
      secondLink: opts.secondLink ?? false,
      ...(opts.firewalldDebug !== undefined ? { firewalldDebug: opts.firewalldDebug } : {}),
    };
    const rand = id.split('-')[1] ?? '000000';
    this.id = id;
    this.tmpDir = tmpDir;
    this.labLog = path.join(tmpDir, 'lab.log');
    this.serverNs = `${NS_PREFIX}${id}-s`;
    this.clientNs = `${NS_PREFIX}${id}-c`;
    this.serverIf = `ks${rand}`; // 8 chars, well below IFNAMSIZ-1 = 15
    this.clientIf = `kc${rand}`;
    this.serverAddr = `10.200.${subnet}.1`;
    this.clientAddr = `10.200.${subnet}.2`;
    this.extraClientAddrs = Array.from({ length: extra }, (_, i) => `10.200.${subnet}.${i + 3}`);
    const two = this.opts.secondLink;
    this.serverIf2 = two ? `ks${rand}b` : '';
    this.clientIf2 = two ? `kc${rand}b` : '';
    this.serverAddr2 = two ? `10.201.${subnet}.1` : '';
    this.clientAddr2 = two ? `10.201.${subnet}.2` : '';
    // subnet is 1..254, so this is the canonical (RFC 5952) spelling that
    // firewall-cmd echoes back in --list-rich-rules.
    const hex = subnet.toString(16);
    this.serverAddr6 = this.opts.ipv6 ? `fd00:6b6e:${hex}::1` : '';
    this.clientAddr6 = this.opts.ipv6 ? `fd00:6b6e:${hex}::2` : '';
    this.env = { ...process.env };
    this.firewalldRelease = release;
    this.fwRoot = fwRoot;
  }

  /** The abstract socket of the lab bus (only visible inside the server network namespace). */
  private get abstractBus(): string {
    return `knlab-${this.id}`;
  }

  // ----- logging -----------------------------------------------------------

  log(msg: string): void {
    if (this.destroyed) return;
    try {
      fs.appendFileSync(this.labLog, `${new Date().toISOString()} ${msg}\n`);
    } catch {
      /* tmpDir gone – ignore */
    }
  }

  // ----- namespaces --------------------------------------------------------

  private nsName(ns: LabNs): string {
    if (ns === 'server') return this.serverNs;
    if (ns === 'client') return this.clientNs;
    throw new Error(`unknown namespace ${String(ns)} (expected 'server' or 'client')`);
  }

  /** Run a host-side command that must succeed (e.g. `ip -n NS …`). */
  private async mustRun(argv: string[], input?: string): Promise<string> {
    const r = await runCmd(argv, { env: this.env, track: this.transient, ...(input !== undefined ? { input } : {}) });
    this.log(`run ${describe(argv)} -> ${String(r.code)}${input !== undefined ? `\n${input}` : ''}`);
    if (r.code !== 0) {
      throw new Error(`${describe(argv)} failed (exit ${String(r.code)}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout;
  }

  /** Create both namespaces, the veth pair and all addresses. */
  async setupNetwork(): Promise<void> {
    await this.mustRun([IP, 'netns', 'add', this.serverNs]);
    await this.mustRun([IP, 'netns', 'add', this.clientNs]);
    // The veth pair is created *inside* the server namespace with its peer
    // going straight into the client namespace: the host namespace never
    // sees either interface. No routes besides the connected ones.
    const server = [
      'link set lo up',
      `link add ${this.serverIf} type veth peer name ${this.clientIf} netns ${this.clientNs}`,
      `addr add ${this.serverAddr}/${this.prefix4} dev ${this.serverIf}`,
      ...(this.opts.ipv6 ? [`addr add ${this.serverAddr6}/${this.prefix6} dev ${this.serverIf} nodad`] : []),
      `link set ${this.serverIf} up`,
      ...(this.serverIf2
        ? [
            `link add ${this.serverIf2} type veth peer name ${this.clientIf2} netns ${this.clientNs}`,
            `addr add ${this.serverAddr2}/${this.prefix4} dev ${this.serverIf2}`,
            `link set ${this.serverIf2} up`,
          ]
        : []),
    ];
    await this.mustRun([IP, '-n', this.serverNs, '-batch', '-'], server.join('\n') + '\n');
    const client = [
      'link set lo up',
      `addr add ${this.clientAddr}/${this.prefix4} dev ${this.clientIf}`,
      ...this.extraClientAddrs.map((a) => `addr add ${a}/${this.prefix4} dev ${this.clientIf}`),
      ...(this.opts.ipv6 ? [`addr add ${this.clientAddr6}/${this.prefix6} dev ${this.clientIf} nodad`] : []),
      `link set ${this.clientIf} up`,
      ...(this.clientIf2
        ? [`addr add ${this.clientAddr2}/${this.prefix4} dev ${this.clientIf2}`, `link set ${this.clientIf2} up`]
        : []),
    ];
    await this.mustRun([IP, '-n', this.clientNs, '-batch', '-'], client.join('\n') + '\n');
    // Carrier/operstate follow a moment after `link set up` (linkwatch runs
    // deferred); wait so the first packet of a test is never sent on a link
    // still reported NO-CARRIER.
    const t0 = Date.now();
    await this.waitFor(
      async () => {
        for (const [ns, dev] of [
          [this.serverNs, this.serverIf],
          [this.clientNs, this.clientIf],
          ...(this.serverIf2
            ? ([
                [this.serverNs, this.serverIf2],
                [this.clientNs, this.clientIf2],
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
    this.log(`veth operstate UP after ${Date.now() - t0} ms`);
  }

  async addServerAddress(cidr: string): Promise<void> {
    this.assertRunning();
    await this.mustRun([
      IP,
      '-n',
      this.serverNs,
      'addr',
      'add',
      cidr,
      'dev',
      this.serverIf,
      ...(cidr.includes(':') ? ['nodad'] : []),
    ]);
  }

  async delServerAddress(cidr: string): Promise<void> {
    this.assertRunning();
    await this.mustRun([IP, '-n', this.serverNs, 'addr', 'del', cidr, 'dev', this.serverIf]);
  }

  // ----- processes ---------------------------------------------------------

  private assertRunning(): void {
    if (this.stopping) throw new Error(`lab ${this.id} has been stopped`);
  }

  /**
   * A client of the release root (firewall-cmd) runs chrooted into a
   * read-only view of that root, in a private mount namespace (fw-chroot.sh).
   */
  private inRoot(argv: string[], mode: string, etc = '-'): string[] {
    if (!this.fwRoot) return argv;
    const chroot = ['bash', FW_CHROOT_SCRIPT, this.fwRoot.path, this.tmpDir, mode, etc, '--'];
    return ['unshare', '--mount', '--propagation', 'private', '--', ...chroot, ...argv];
  }

  async execIn(ns: LabNs, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertRunning();
    // firewall-cmd is the running firewalld's own (its signals carry the caller's text verbatim).
    const cmd = ns === 'server' && path.basename(argv[0] ?? '') === 'firewall-cmd' ? this.inRoot(argv, 'ro') : argv;
    const full = [IP, 'netns', 'exec', this.nsName(ns), ...cmd];
    const t0 = Date.now();
    const r = await runCmd(full, { ...opts, env: this.env, track: this.transient });
    this.log(
      `exec[${ns}] ${describe(argv)} -> ${r.timedOut ? 'TIMEOUT' : String(r.code ?? r.signal)} (${Date.now() - t0} ms)` +
        (r.code !== 0 && r.stderr ? `\n  stderr: ${r.stderr.trim()}` : ''),
    );
    return r;
  }

  /**
   * Start a managed long-running process in a namespace, in its own process
   * group, stdout/stderr appended to `logFile`. With `pipeStdout` stdout is
   * a pipe instead (the caller reads it).
   */
  private startManaged(ns: LabNs, name: string, argv: string[], logFile: string, pipeStdout = false): Managed {
    this.assertRunning();
    const fd = fs.openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(IP, ['netns', 'exec', this.nsName(ns), ...argv], {
        detached: true, // own process group → killGroup() reaches its children
        env: this.env,
        stdio: ['ignore', pipeStdout ? 'pipe' : fd, fd],
      });
    } finally {
      fs.closeSync(fd); // the child has its own copy
    }
    // Do not keep the test process alive just because a lab is running;
    // stop() / the exit hook take care of the processes.
    child.unref();
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.log(`${name} (pid ${String(child.pid)}) exited: ${String(code ?? signal)}`);
        resolve();
      });
      child.once('error', (e) => {
        this.log(`${name}: spawn error: ${errMsg(e)}`);
        resolve();
      });
    });
    const m: Managed = { name, child, exited, logFile };
    this.managed.add(m);
    void exited.then(() => this.managed.delete(m));
    this.log(`spawn[${ns}] ${name} pid ${String(child.pid)}: ${describe(argv)} (log ${logFile})`);
    return m;
  }

  spawnIn(ns: LabNs, argv: string[], opts: { logFile?: string } = {}): ChildProcess {
    const base = path.basename(argv[0] ?? 'cmd').replace(/[^\w.-]/g, '_');
    const logFile = opts.logFile ?? path.join(this.tmpDir, `spawn-${++this.spawnCounter}-${base}.log`);
    return this.startManaged(ns, base, argv, logFile).child;
  }

  /** SIGTERM the process group, SIGKILL after `graceMs`, wait for exit. */
  private async killManaged(m: Managed, graceMs = KILL_GRACE_MS): Promise<void> {
    const pid = m.child.pid;
    if (pid === undefined || m.child.exitCode !== null || m.child.signalCode !== null) {
      killGroup(pid, 'SIGKILL'); // leader gone, but stragglers in its group may remain
      return;
    }
    killGroup(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      m.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (!graceful) this.log(`${m.name} (pid ${pid}) ignored SIGTERM for ${graceMs} ms, sending SIGKILL`);
    killGroup(pid, 'SIGKILL');
    if (!graceful) await Promise.race([m.exited, sleep(2_000)]);
  }

  // ----- waiting -----------------------------------------------------------

  async waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs: number, intervalMs = 100): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastErr: unknown;
    for (;;) {
      try {
        const v = await fn();
        if (v !== undefined && v !== null && v !== false) return v;
      } catch (e) {
        lastErr = e;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `waitFor: condition not met within ${timeoutMs} ms` +
            (lastErr !== undefined ? ` (last error: ${errMsg(lastErr)})` : ''),
        );
      }
      await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
    }
  }

  // ----- dbus-daemon -------------------------------------------------------

  async startDbus(): Promise<void> {
    const sock = path.join(this.tmpDir, 'bus.sock');
    const conf = path.join(this.tmpDir, 'bus.conf');
    // firewalld's bus policy (FirewallD.conf) is the running release's.
    const policies = this.fwRoot ? rootPolicyDirs(this.fwRoot.path) : ['/usr/share/dbus-1/system.d'];
    await fsp.writeFile(conf, busConfig(sock, this.abstractBus, policies));
    await fsp.rm(sock, { force: true });
    const m = this.startManaged(
      'server',
      'dbus-daemon',
      ['dbus-daemon', `--config-file=${conf}`, '--nofork', '--nopidfile', '--nosyslog', '--print-address=1'],
      path.join(this.tmpDir, 'dbus.log'),
      true,
    );
    const stdout = m.child.stdout;
    if (!stdout) throw new Error('dbus-daemon: no stdout pipe');
    // The first line on stdout is the bus address; it is printed once the
    // socket is listening, so it doubles as the readiness signal.
    const printed = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(
        () => finish(new Error(`dbus-daemon did not print its address within ${DBUS_START_TIMEOUT_MS} ms`)),
        DBUS_START_TIMEOUT_MS,
      );
      const onData = (d: string): void => {
        buf += d;
        const i = buf.indexOf('\n');
        if (i >= 0) finish(null, buf.slice(0, i).trim());
      };
      const onExit = (): void => finish(new Error('dbus-daemon exited during startup'));
      function finish(err: Error | null, line = ''): void {
        clearTimeout(timer);
        stdout?.off('data', onData);
        m.child.off('exit', onExit);
        if (err) reject(err);
        else resolve(line);
      }
      stdout.setEncoding('utf8').on('data', onData);
      m.child.once('exit', onExit);
    }).catch((e: unknown) => {
      throw new Error(`${errMsg(e)}\n--- dbus.log ---\n${tailFile(m.logFile)}`);
    });
    // Keep draining (it prints nothing more) without holding the event loop.
    stdout.resume();
    (stdout as Socket).unref();
    this.dbusProc = m;
    this.log(`dbus-daemon address: ${printed}`);
    this.busAddress = `unix:path=${sock}`;
    this.env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: this.busAddress };
  }

  // ----- firewalld ---------------------------------------------------------

  /**
   * The private copy of /etc/firewalld that firewalld sees (bind-mounted over
   * /etc/firewalld in a mount namespace of its own): the host's files, then
   * our firewalld.conf. A `--permanent` change in a test lands here, never in
   * the host's configuration. Kept across restarts of firewalld within a lab.
   */
  private async writeFirewalldConfig(): Promise<string> {
    const dir = path.join(this.tmpDir, 'firewalld-etc');
    const src = this.fwRoot ? path.join(this.fwRoot.path, 'etc/firewalld') : '/etc/firewalld';
    if (!fs.existsSync(dir) && fs.existsSync(src)) await fsp.cp(src, dir, { recursive: true });
    for (const sub of ['zones', 'services', 'icmptypes', 'ipsets', 'helpers', 'policies']) {
      await fsp.mkdir(path.join(dir, sub), { recursive: true });
    }
    const conf = path.join(dir, 'firewalld.conf');
    if (!fs.existsSync(path.join(dir, '.knlab'))) {
      // A release keeps its own Debian defaults, with the lab's settings for the keys it knows.
      const own = this.fwRoot ? await fsp.readFile(conf, 'utf8').catch(() => '') : '';
      await fsp.writeFile(conf, this.fwRoot ? releaseFirewalldConf(own) : FIREWALLD_CONF);
      await fsp.writeFile(path.join(dir, '.knlab'), 'private copy of /etc/firewalld for one lab\n');
    }
    return dir;
  }

  async firewallCmdRaw(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    if (!this.busAddress) throw new Error('firewallCmdRaw: this lab was started without firewalld');
    const r = await this.execIn('server', ['firewall-cmd', ...args]);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  async execAsNobody(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (!this.busAddress) throw new Error('execAsNobody: this lab was started without a bus');
    const nobody = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups'];
    const env = ['env', `DBUS_SYSTEM_BUS_ADDRESS=unix:abstract=${this.abstractBus}`];
    return this.execIn('server', [...nobody, ...env, ...argv], opts);
  }

  async firewallCmd(...args: string[]): Promise<string> {
    if (!this.busAddress) throw new Error('firewallCmd: this lab was started without firewalld');
    const r = await this.execIn('server', ['firewall-cmd', ...args]);
    if (r.code !== 0) {
      throw new Error(
        `firewall-cmd ${describe(args)} failed (${r.timedOut ? 'timeout' : `exit ${String(r.code ?? r.signal)}`}): ${r.stderr.trim() || r.stdout.trim()}`,
      );
    }
    return r.stdout.trim();
  }

  async richRules(zone = 'public'): Promise<string[]> {
    const out = await this.firewallCmd(`--zone=${zone}`, '--list-rich-rules');
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }

  async startFirewalld(): Promise<void> {
    this.assertRunning();
    if (!this.busAddress) throw new Error('startFirewalld: this lab was started without firewalld (no bus)');
    if (this.firewalldProc && this.managed.has(this.firewalldProc)) {
      throw new Error('startFirewalld: firewalld is already running');
    }
    const etc = await this.writeFirewalldConfig();
    const logFile = path.join(this.tmpDir, 'firewalld.log');
    const consoleLog = path.join(this.tmpDir, 'firewalld.console.log');
    // Its own mount namespace (private propagation) with the lab's copy bind-mounted over /etc/firewalld:
    // firewalld reads and writes /etc/firewalld as on a real server, and the host's stays untouched.
    // A release's firewalld runs chrooted into a fresh overlay of its root (fw-chroot.sh), where the lab
    // dir is /run/knlab; 0.9 has no --log-target (it logs to --log-file and syslog, absent there).
    const fwArgs = ['--nofork', '--nopid'];
    if (!this.fwRoot || !this.fwRoot.version.startsWith('0.')) fwArgs.push('--log-target', 'file');
    fwArgs.push('--log-file', this.fwRoot ? '/run/knlab/firewalld.log' : logFile);
    if (this.opts.firewalldDebug !== undefined) fwArgs.push(`--debug=${this.opts.firewalldDebug}`);
    const overlay = path.join(this.tmpDir, `fwroot-${++this.firewalldStarts}`);
    const argv = this.fwRoot
      ? this.inRoot(['firewalld', ...fwArgs], `rw:${overlay}`, etc)
      : [
          'unshare',
          '--mount',
          '--propagation',
          'private',
          '--',
          'sh',
          '-c',
          'mount --bind "$0" /etc/firewalld && exec "$@"',
          etc,
          'firewalld',
          ...fwArgs,
        ];
    const m = this.startManaged('server', 'firewalld', argv, consoleLog);
    this.firewalldProc = m;
    const t0 = Date.now();
    const failure = (why: string): Error =>
      new Error(
        `firewalld ${why}\n--- firewalld.log (tail) ---\n${tailFile(logFile)}\n--- firewalld.console.log (tail) ---\n${tailFile(consoleLog)}`,
      );
    // Poll `firewall-cmd --state` (it exits 0 and prints "running" once the
    // daemon has finished its startup; exits non-zero while the name is
    // not yet on the bus).
    for (;;) {
      if (!this.managed.has(m)) throw failure('exited during startup');
      const r = await this.execIn('server', ['firewall-cmd', '--state'], { timeoutMs: 10_000 });
      if (r.code === 0 && r.stdout.trim() === 'running') break;
      if (Date.now() - t0 > FIREWALLD_START_TIMEOUT_MS) {
        throw failure(
          `not running after ${FIREWALLD_START_TIMEOUT_MS} ms (last --state: ${(r.stdout + r.stderr).trim()})`,
        );
      }
      await sleep(100);
    }
    this.log(`firewalld running after ${Date.now() - t0} ms`);
    this.firewalldVersion = await this.firewallCmd('--version');
    for (const i of this.serverIfs) await this.firewallCmd('--zone=public', `--change-interface=${i}`);
    // Debian's public zone lists ssh; remove it (runtime only) so sshd is
    // reachable from the client only through rules the test adds.
    await this.firewallCmd('--zone=public', '--remove-service=ssh');
    const all = await this.firewallCmd('--zone=public', '--list-all');
    const field = (name: string): string[] => {
      const line = all.split('\n').find((l) => l.trim().startsWith(`${name}:`));
      return line
        ? line
            .trim()
            .slice(name.length + 1)
            .trim()
            .split(/\s+/)
            .filter((s) => s !== '')
        : [];
    };
    if (!this.serverIfs.every((i) => field('interfaces').includes(i)) || field('services').includes('ssh')) {
      throw failure(`zone setup did not take effect; --list-all:\n${all}`);
    }
  }

  async restartBus(): Promise<void> {
    await this.stopFirewalld();
    const bus = this.dbusProc;
    this.dbusProc = undefined;
    if (bus) await this.killManaged(bus);
    await this.startDbus();
    await this.startFirewalld();
  }

  pauseFirewalld(paused: boolean): void {
    const pid = this.firewalldProc?.child.pid;
    if (pid === undefined || !this.firewalldProc || !this.managed.has(this.firewalldProc))
      throw new Error('pauseFirewalld: firewalld is not running');
    process.kill(pid, paused ? 'SIGSTOP' : 'SIGCONT');
    this.log(`firewalld ${paused ? 'paused (SIGSTOP)' : 'resumed (SIGCONT)'}`);
  }

  async stopFirewalld(): Promise<void> {
    const m = this.firewalldProc;
    this.firewalldProc = undefined;
    if (!m) return;
    await this.killManaged(m, FIREWALLD_STOP_TIMEOUT_MS);
  }

  // ----- sshd --------------------------------------------------------------

  async startSshd(): Promise<void> {
    const key = path.join(this.tmpDir, 'hostkey');
    await this.mustRun(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `knlab-${this.id}`, '-f', key]);
    await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 }); // privilege-separation dir
    const argv = [SSHD, '-D', '-e', '-f', '/dev/null', '-h', key, '-o', 'PidFile=none', '-o', 'ListenAddress=0.0.0.0'];
    if (this.opts.ipv6) argv.push('-o', 'ListenAddress=::');
    argv.push('-p', '22');
    const m = this.startManaged('server', 'sshd', argv, path.join(this.tmpDir, 'sshd.log'));
    const t0 = Date.now();
    for (;;) {
      if (!this.managed.has(m)) throw new Error(`sshd exited during startup\n--- sshd.log ---\n${tailFile(m.logFile)}`);
      const r = await this.execIn('server', ['nc', '-z', '-w1', '127.0.0.1', '22'], { timeoutMs: 5_000 });
      if (r.code === 0) break;
      if (Date.now() - t0 > SSHD_START_TIMEOUT_MS) {
        throw new Error(
          `sshd not accepting on 127.0.0.1:22 after ${SSHD_START_TIMEOUT_MS} ms\n--- sshd.log ---\n${tailFile(m.logFile)}`,
        );
      }
      await sleep(100);
    }
    this.log(`sshd accepting after ${Date.now() - t0} ms`);
  }

  // ----- probes ------------------------------------------------------------

  async sshBanner(opts: SshBannerOptions = {}): Promise<string | null> {
    const host = opts.host ?? this.serverAddr;
    const timeoutMs = opts.timeoutMs ?? 1_500;
    const argv = [
      process.execPath,
      '-e',
      BANNER_PROBE,
      host,
      String(opts.port ?? 22),
      opts.source ?? '',
      String(timeoutMs),
    ];
    const from = opts.from ?? 'client';
    const r = await this.execIn(from, argv, { timeoutMs: timeoutMs + 10_000 });
    this.log(
      `sshBanner[${from}] ${host}:${opts.port ?? 22} from ${opts.source ?? '(default)'} -> ${r.code === 0 ? JSON.stringify(r.stdout) : `null (${r.stderr.trim()})`}`,
    );
    return r.code === 0 ? r.stdout : null;
  }

  // ----- teardown ----------------------------------------------------------

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const t0 = Date.now();
    this.log('stop: begin');
    const errors: string[] = [];
    // 1. Our process groups: SIGTERM, SIGKILL after the grace period.
    await Promise.all([...this.managed].map((m) => this.killManaged(m)));
    for (const c of this.transient) killGroup(c.pid, 'SIGKILL');
    // 2. Anything else still inside the namespaces (e.g. processes a test
    //    started by other means), then the namespaces themselves. Deleting
    //    the server namespace destroys the veth pair.
    for (const ns of [this.serverNs, this.clientNs]) {
      const err = destroyNetnsSync(ns);
      if (err) errors.push(err);
    }
    this.log(`stop: done in ${Date.now() - t0} ms`);
    // 3. The temp dir (unless kept for a post-mortem).
    this.destroyed = true;
    if (process.env.KNLAB_KEEP_TMP === '1') {
      process.stderr.write(`knlab: keeping ${this.tmpDir} (KNLAB_KEEP_TMP=1)\n`);
    } else {
      await fsp
        .rm(this.tmpDir, { recursive: true, force: true })
        .catch((e: unknown) => errors.push(`rm ${this.tmpDir}: ${errMsg(e)}`));
    }
    activeLabs.delete(this);
    if (activeLabs.size === 0) uninstallHooks();
    if (errors.length > 0) throw new Error(`lab ${this.id} stop: ${errors.join('; ')}`);
  }

  /** Synchronous, best-effort teardown for exit/signal hooks. */
  destroySync(): void {
    this.stopping ??= Promise.resolve();
    for (const m of this.managed) killGroup(m.child.pid, 'SIGKILL');
    for (const c of this.transient) killGroup(c.pid, 'SIGKILL');
    destroyNetnsSync(this.serverNs);
    destroyNetnsSync(this.clientNs);
    this.destroyed = true;
    if (process.env.KNLAB_KEEP_TMP !== '1') {
      try {
        fs.rmSync(this.tmpDir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
    activeLabs.delete(this);
  }
}

/**
 * Build a lab (see the module comment). On any failure everything created so
 * far is torn down before the error is rethrown.
 */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  requireRoot();
  await cleanupStale().catch(() => undefined);
  // The release root first (a first run builds it, minutes): a root that cannot be built fails the lab.
  const release = firewalldChoice(opts.firewalldRelease);
  const fwRoot = (opts.firewalld ?? true) && needsRoot(release) ? await ensureFwRoot(release) : undefined;

  const rand = randomBytes(3).toString('hex');
  const id = `${process.pid}-${rand}`;
  const subnet = 1 + ((randomBytes(1)[0] ?? 0) % 254); // 10.200.<1..254>.0/24
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), `${TMP_PREFIX}${id}-`));
  if (path.join(tmpDir, 'bus.sock').length > MAX_UNIX_PATH) {
    await fsp.rm(tmpDir, { recursive: true, force: true });
    throw new Error(`temp dir path too long for a unix socket: ${tmpDir} (set TMPDIR to something shorter)`);
  }

  let lab: LabImpl;
  try {
    lab = new LabImpl(id, tmpDir, subnet, opts, release, fwRoot);
  } catch (e) {
    await fsp.rm(tmpDir, { recursive: true, force: true });
    throw e;
  }
  activeLabs.add(lab);
  installHooks();

  const t0 = Date.now();
  try {
    await lab.setupNetwork();
    await Promise.all([
      (async (): Promise<void> => {
        if (opts.firewalld ?? true) {
          await lab.startDbus();
          await lab.startFirewalld();
        }
      })(),
      (async (): Promise<void> => {
        if (opts.sshd ?? true) await lab.startSshd();
      })(),
    ]);
  } catch (e) {
    lab.log(`startLab failed: ${errMsg(e)}`);
    await lab.stop().catch(() => undefined);
    throw e;
  }
  lab.log(`startLab: ready in ${Date.now() - t0} ms`);
  return lab;
}
