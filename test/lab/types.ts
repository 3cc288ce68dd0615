/**
 * The lab's public types (test/lab/lab.ts re-exports them): what tests and
 * benchmarks see of a lab. Imports nothing of the lab.
 */
import type { ChildProcess } from 'node:child_process';

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
