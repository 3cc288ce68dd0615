/** What the command line gives the daemon, and the error a start-up the admin must fix throws. */

export interface DaemonOptions {
  /** Interface(s) to listen on (-i, else config Interface, else eth0 or the default route's): `eno1` or `eno1,eno2`, or `any`. */
  iface: string;
  /** -4: ignore IPv6 knocks. */
  ipv4Only: boolean;
  /** -l: reverse-resolve knockers for the log (never delays packet handling). */
  lookup: boolean;
  /** Bound on attempts in flight. */
  maxAttempts?: number;
  /** Bound on completions per door a second (--max-completions). */
  maxCompletions?: number;
  /** Bound on pending commands (--max-pending-commands). */
  maxPendingCommands?: number;
  /** Bound on firewalld grants held (--max-grants). */
  maxGrants?: number;
  /** Daemon-side budget of stage/timeout/wrong-knock log lines a second. */
  eventLogPerSecond?: number;
  /** How often to re-read the interface's addresses (ms). */
  addressPollMs?: number;
  /** Where pending stop commands and held grants are kept across restarts (default /run/knockd). */
  stateDir?: string;
  /** libpcap ring size in MiB (--capture-buffer). */
  captureBufferMB?: number;
  /** Publish org.knockd.Knockd1 on the system bus for `knockd --status` (default true). */
  statusService?: boolean;
  version?: string;
}

/** Start-up failures an admin must fix; the message says how. */
export class StartupError extends Error {
  override name = 'StartupError';
}
