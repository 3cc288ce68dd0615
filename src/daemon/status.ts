/**
 * `knockd --status`: the running daemon offers `org.knockd.Knockd1` on the
 * system bus (policy: packaging/org.knockd.Knockd1.conf, root only) with one
 * method, `Status() → s`, a JSON snapshot: doors, grants held (address, door,
 * zone, rule, seconds left), pending stop commands, the named bounds and how
 * often each was reached, capture counters.
 */
import * as dbus from 'dbus-next';
import type { Logger } from 'pino';
import { withTimeout } from '../util/timers';
import { formatFirewalldReport, type FirewalldReport } from '../firewalld/report';

export const STATUS_NAME = 'org.knockd.Knockd1';
export const STATUS_PATH = '/org/knockd/Knockd1';
export const STATUS_IFACE = 'org.knockd.Knockd1';

export interface StatusSnapshot {
  pid: number;
  version: string;
  iface: string;
  /** The STATUS= line. */
  status: string;
  listening: boolean;
  /** Each interface of `-i`/`Interface`: capturing or what it waits for. */
  interfaces?: { name: string; listening: boolean; state: string }[];
  doors: { name: string; sequence: string; action: string; zone?: string; rules?: string[]; commands: boolean }[];
  grants: {
    src: string;
    door: string;
    zone: string;
    rule: string;
    secondsLeft: number | null;
    applied: boolean;
    state: 'opening' | 'open' | 'closing';
  }[];
  pendingStops: { door: string; src: string; secondsLeft: number }[];
  /** The daemon's named bounds, and how often each was reached. */
  bounds?: {
    maxCompletions: number;
    completionBurst: number;
    completionsRefused: number;
    maxPendingCommands: number;
    pendingCommands: number;
    commandsRefused: number;
    eventLogPerSecond: number;
    eventLinesSuppressed: number;
    /** notify_command (notify-hook.ts); absent in snapshots of older daemons. */
    notifyRunning?: number;
    notifyMaxRunning?: number;
    notifyDropped?: number;
    notifyTimeoutMs?: number;
    notifyTimedOut?: number;
  };
  capture?: { frames: number; malformed: number; ignored: number; knocks: number; inFlight: number; evicted: number };
  /** firewalld's version and health, the grant bounds, signals ignored. */
  firewalld?: FirewalldReport;
}

class StatusInterface extends dbus.interface.Interface {
  constructor(private readonly snapshot: () => Promise<StatusSnapshot>) {
    super(STATUS_IFACE);
  }

  Status(): Promise<string> {
    return this.snapshot().then((s) => JSON.stringify(s));
  }
}
StatusInterface.configureMembers({ methods: { Status: { inSignature: '', outSignature: 's' } } });

/** Publish the status object; failures (no system bus, policy) are logged, never fatal. */
export class StatusService {
  private bus: dbus.MessageBus | undefined;

  constructor(
    private readonly log: Logger,
    private readonly snapshot: () => Promise<StatusSnapshot>,
  ) {}

  async start(): Promise<void> {
    try {
      const bus = dbus.systemBus();
      bus.on('error', (err: Error) => this.log.debug(`status bus: ${err.message}`));
      bus.export(STATUS_PATH, new StatusInterface(this.snapshot));
      const r = await bus.requestName(STATUS_NAME, dbus.NameFlag.DO_NOT_QUEUE);
      if (r !== dbus.RequestNameReply.PRIMARY_OWNER && r !== dbus.RequestNameReply.ALREADY_OWNER) {
        this.log.warn(`another knockd owns ${STATUS_NAME} on the system bus; "knockd --status" will talk to that one`);
      }
      this.bus = bus;
    } catch (err) {
      this.log.warn(
        `"knockd --status" will not work: cannot publish ${STATUS_NAME} on the system bus (${(err as Error).message})`,
      );
    }
  }

  stop(): void {
    this.bus?.disconnect();
    this.bus = undefined;
  }
}

/** Ask the running daemon (CLI side). */
export async function queryStatus(timeoutMs = 3000): Promise<StatusSnapshot> {
  const bus = dbus.systemBus();
  bus.on('error', () => undefined);
  try {
    const call = bus.call(
      new dbus.Message({ destination: STATUS_NAME, path: STATUS_PATH, interface: STATUS_IFACE, member: 'Status' }),
    );
    const reply = await withTimeout(call, timeoutMs);
    return JSON.parse(String(reply?.body[0] ?? '{}')) as StatusSnapshot;
  } finally {
    bus.disconnect();
  }
}

function secs(n: number | null): string {
  if (n === null) return 'no timeout';
  if (n >= 86_400) return `${Math.floor(n / 86_400)}d${String(Math.floor((n % 86_400) / 3600)).padStart(2, '0')}h`;
  if (n >= 3600) return `${Math.floor(n / 3600)}h${String(Math.floor((n % 3600) / 60)).padStart(2, '0')}m`;
  if (n >= 60) return `${Math.floor(n / 60)}m${String(n % 60).padStart(2, '0')}s`;
  return `${n}s`;
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ')}`).join('\n');
}

/** Human-readable `knockd --status` output. */
export function formatStatus(s: StatusSnapshot): string {
  const out: string[] = [`knockd ${s.version} (pid ${s.pid}): ${s.status}`, ''];
  if (s.interfaces && s.interfaces.length > 1)
    out.push('interfaces:', table([['INTERFACE', 'STATE'], ...s.interfaces.map((i) => [i.name, i.state])]), '');
  out.push('doors:');
  out.push(
    table([
      ['DOOR', 'SEQUENCE', 'ACTION'],
      ...s.doors.map((d) => [
        d.name,
        d.sequence,
        d.rules
          ? `firewalld ${d.action} in zone ${d.zone}: ${d.rules.join(', ')}`
          : d.commands
            ? 'commands'
            : 'log only',
      ]),
    ]),
  );
  out.push('', `grants held (${s.grants.length}):`);
  if (s.grants.length) {
    out.push(
      table([
        ['ADDRESS', 'DOOR', 'ZONE', 'LEFT', 'RULE'],
        ...s.grants.map((g) => [
          g.src,
          g.door,
          g.zone,
          `${g.state === 'closing' ? 'closing (firewalld has not confirmed the removal; retrying)' : `${secs(g.secondsLeft)}${g.applied ? '' : ' (waiting for firewalld)'}`}`,
          g.rule,
        ]),
      ]),
    );
  }
  if (s.pendingStops.length) {
    out.push('', `stop commands pending (${s.pendingStops.length}):`);
    out.push(
      table([['ADDRESS', 'DOOR', 'RUNS IN'], ...s.pendingStops.map((p) => [p.src, p.door, secs(p.secondsLeft)])]),
    );
  }
  if (s.bounds) {
    const b = s.bounds;
    out.push(
      '',
      'bounds:',
      table([
        ['BOUND', 'VALUE', 'REACHED'],
        [
          'completions per door (--max-completions)',
          `${b.maxCompletions}/s, burst ${b.completionBurst}`,
          `${b.completionsRefused} refused`,
        ],
        [
          'pending commands (--max-pending-commands)',
          `${b.pendingCommands} of ${b.maxPendingCommands}`,
          `${b.commandsRefused} refused`,
        ],
        ['event log lines (daemon side)', `${b.eventLogPerSecond}/s`, `${b.eventLinesSuppressed} suppressed`],
        ...(b.notifyMaxRunning !== undefined
          ? [
              [
                'notify_command running (NOTIFY_MAX_RUNNING)',
                `${b.notifyRunning ?? 0} of ${b.notifyMaxRunning}`,
                `${b.notifyDropped ?? 0} dropped`,
              ],
              [
                'notify_command run time (NOTIFY_TIMEOUT_MS)',
                `${(b.notifyTimeoutMs ?? 0) / 1000} s`,
                `${b.notifyTimedOut ?? 0} killed`,
              ],
            ]
          : []),
        ...(s.firewalld
          ? [
              [
                'firewalld grants held (--max-grants)',
                `${s.firewalld.grants} of ${s.firewalld.maxGrants}`,
                `${s.firewalld.refusedFull} refused`,
              ],
              [
                'firewalld calls in flight',
                `${s.firewalld.callsInFlight} of ${s.firewalld.maxCalls}`,
                `${s.firewalld.callsQueued} queued now`,
              ],
            ]
          : []),
      ]),
    );
  }
  if (s.capture) {
    const c = s.capture;
    out.push(
      '',
      `capture: ${c.frames} frames, ${c.knocks} knock packets, ${c.malformed} malformed, ${c.inFlight} attempts in flight, ${c.evicted} evicted`,
    );
  }
  if (s.firewalld) out.push('', formatFirewalldReport(s.firewalld));
  return `${out.join('\n')}\n`;
}
