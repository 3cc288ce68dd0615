import type { FirewalldDoor, KnockPort, SpaDoor, TcpFlagRule } from '../model';

export type { FirewalldDoor, KnockPort, TcpFlagRule } from '../model';

/** A problem found in the config, always tied to a file and line. */
export interface ConfigIssue {
  severity: 'error' | 'warning';
  file: string;
  /** 1-based line number; 0 when the problem concerns the whole file (e.g. it cannot be read). */
  line: number;
  /** Door (section) name when the problem belongs to one. */
  door?: string;
  message: string;
}

export interface DoorConfig {
  name: string;
  /** Line of the `[name]` header (or of the `sequence` line that started a header-less door). */
  line: number;
  sequence: KnockPort[];
  /** Seconds (knockd's `Seq_Timeout`, alias `Timeout`); default 25 as in knockd. */
  seqTimeout: number;
  tcpFlags: TcpFlagRule;
  /** `Strict_Repeats = yes`: a second knock on the port just passed spoils the attempt (knockd 0.8); default: ignored. */
  strictRepeats?: boolean;
  /** `Refresh_Interval`, seconds: a held grant is refreshed at most this often (default 5, daemon/refresh-gate.ts). */
  refreshInterval?: number;
  /** `Target`: the destination address knocks must be sent to, instead of the interface's own. */
  target?: string;
  /** Seconds (knockd's `Cmd_Timeout`); default 10 as in knockd. With firewalld_action=open: firewalld-side rule timeout, 0 = none. */
  cmdTimeout: number;
  /** Whether `Cmd_Timeout` was written (a firewalld door without it gets knockd's default, 10 s; an SPA door 30 s). */
  cmdTimeoutSet: boolean;
  startCommand?: string;
  startCommand6?: string;
  stopCommand?: string;
  stopCommand6?: string;
  /** `firewalld_source_prefix` (4) / `firewalld_source_prefix6` (6): the grant is for the knocker's network of that many bits. */
  sourcePrefix?: { 4?: number; 6?: number };
  /** `notify_command`: run beside a firewalld or SPA door's grants (daemon/notify-hook.ts). */
  notifyCommand?: string;
  /** `One_Time_Sequences` file path. */
  oneTimeSequences?: string;
  firewalld?: FirewalldDoor;
  /** An SPA door (spa_* directives): no sequence, the packet says what to open. */
  spa?: SpaDoor;
  /** `firewalld_zone` of an SPA door; undefined: the default zone. */
  spaZone?: string;
  /** Line of each directive, by canonical upper-case key, for error messages. */
  lines: Record<string, number>;
}

export interface Options {
  logFile?: string;
  useSyslog: boolean;
  pidFile?: string;
  interface?: string;
}

export interface Config {
  file: string;
  options: Options;
  doors: DoorConfig[];
  /** Warnings (never errors: a config with errors is not returned). */
  warnings: ConfigIssue[];
}
