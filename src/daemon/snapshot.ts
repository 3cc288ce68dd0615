/**
 * What the daemon says about itself: the one-line STATUS= for systemd, and
 * the `knockd --status` snapshot (status.ts publishes it). Reads a view of the
 * daemon's parts; changes nothing.
 */
import type { NotifyHook } from './notify-hook';
import { ruleTemplates } from '../model';
import type { CaptureSupervisor } from '../capture/supervisor';
import type { Config } from '../config/types';
import { sequenceText } from '../config/parse';
import type { Grant } from '../firewalld/grant-model';
import { brokenStatus, firewalldReport } from '../firewalld/report';
import type { CommandRunner } from './commands';
import type { CompletionLimit } from './completions';
import type { RuntimeDoor } from './doors';
import type { EventLog } from './event-log';
import { needsFirewalld, type FirewallLink } from './firewall';
import type { InterfaceWatcher } from './interfaces';
import type { StatusSnapshot } from './status';

export interface DaemonView {
  version: string;
  iface: string;
  capture: CaptureSupervisor;
  interfaces: InterfaceWatcher;
  doors: readonly RuntimeDoor[];
  /** What the firewalld doors wait for ('' when nothing). */
  firewalldWait: string;
  link: FirewallLink;
  commands: CommandRunner;
  limit: CompletionLimit;
  events: EventLog;
  notify?: NotifyHook;
}

/** What --status shows of a firewalld door: its services and ports, or (converted command lines) its rules. */
function doorRules(fwd: NonNullable<Config['doors'][number]['firewalld']>): string[] {
  if (fwd.from === 'directives') return [...fwd.services, ...fwd.ports.map((p) => `${p.port}/${p.proto}`)];
  return [...new Set(ruleTemplates(fwd).map((r) => r.rule))];
}

const grantsOf = (v: DaemonView): Grant[] => v.link.grants?.list() ?? [];

/** One line for systemd's STATUS= (shown by `systemctl status knockd`). */
export function statusLine(v: DaemonView): string {
  const fw = v.firewalldWait ? `; ${v.firewalldWait}` : '';
  const client = v.link.client;
  const broken = v.link.health?.broken;
  if (broken) return `${brokenStatus(broken)}${fw}`;
  if (client && !client.running && v.firewalldWait === '' && (v.doors.some(needsFirewalld) || grantsOf(v).length > 0))
    return `firewalld not running, retrying${fw}`;
  if (!v.capture.listening)
    return `${v.interfaces.waitingFor || v.capture.problem || `waiting for ${v.interfaces.ifaces.join(', ')}`}${fw}`;
  const grants = v.link.grants;
  const open = grantsOf(v).length + v.commands.pending().length;
  const closing = grants?.closingCount ?? 0;
  const waiting = (grants?.pendingCount ?? 0) - closing;
  const extra = `${waiting ? `, ${waiting} waiting for firewalld` : ''}${closing ? `, ${closing} closing (not yet confirmed by firewalld)` : ''}`;
  const on = v.capture.interfaces.map((i) => i.iface);
  const notYet = v.interfaces.ifaces
    .filter((i) => !on.includes(i))
    .map((i) => v.interfaces.waitOf(i) || v.capture.problemOf(i) || `waiting for ${i}`);
  const n = v.doors.length;
  return `listening on ${on.join(', ')}${notYet.length ? ` (${notYet.join('; ')})` : ''}, ${n} door${n === 1 ? '' : 's'}, ${open - closing} open${extra}${fw}`;
}

/** What `knockd --status` shows. */
export async function snapshot(v: DaemonView): Promise<StatusSnapshot> {
  const now = Date.now();
  const cap = await v.capture.stats();
  return {
    pid: process.pid,
    version: v.version,
    iface: v.iface,
    status: statusLine(v),
    listening: v.capture.listening,
    interfaces: v.interfaces.ifaces.map((name) => {
      const on = v.capture.interfaces.find((i) => i.iface === name);
      return on
        ? { name, listening: true, state: `listening (${on.link})` }
        : { name, listening: false, state: v.interfaces.waitOf(name) || v.capture.problemOf(name) || 'waiting' };
    }),
    doors: v.doors.map((d) => {
      const fwd = d.config.firewalld;
      const c = d.config;
      return {
        name: d.name,
        sequence: sequenceText({ sequence: [...d.sequence] }),
        action: d.action,
        ...(fwd ? { zone: fwd.zone ?? v.link.defaultZone, rules: doorRules(fwd) } : {}),
        commands: Boolean(c.startCommand || c.startCommand6),
      };
    }),
    grants: grantsOf(v).map((g) => ({
      src: g.src,
      door: g.door,
      zone: g.zone,
      rule: g.rule,
      secondsLeft: g.expiresAt > 0 ? Math.max(0, Math.round((g.expiresAt - now) / 1000)) : null,
      applied: g.state === 'open',
      state: g.state,
    })),
    pendingStops: v.commands
      .pending()
      .map((p) => ({ door: p.door, src: p.src, secondsLeft: Math.max(0, Math.round((p.dueAt - now) / 1000)) })),
    bounds: {
      maxCompletions: v.limit.perSecond,
      completionBurst: v.limit.burst,
      completionsRefused: v.limit.refusedTotal,
      maxPendingCommands: v.commands.maxPending,
      pendingCommands: v.commands.pendingCount,
      commandsRefused: v.commands.refusedFull,
      eventLogPerSecond: v.events.perSecond,
      eventLinesSuppressed: v.events.suppressedTotal,
      ...(v.notify
        ? {
            notifyRunning: v.notify.active,
            notifyMaxRunning: v.notify.maxRunning,
            notifyDropped: v.notify.counts.dropped,
            notifyTimeoutMs: v.notify.timeoutMs,
            notifyTimedOut: v.notify.counts.timedOut,
          }
        : {}),
    },
    ...(cap ? { capture: { ...cap.frames, inFlight: cap.inFlight, evicted: cap.matcher.evicted } } : {}),
    ...(v.link.client && v.link.grants && v.link.health
      ? { firewalld: firewalldReport(v.link.client, v.link.grants, v.link.health) }
      : {}),
  };
}
