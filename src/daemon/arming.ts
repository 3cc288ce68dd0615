/**
 * Which doors of the running config are armed, and what the daemon does when
 * a grant ends or a config no longer makes a grant: the glue between the
 * daemon's running config (daemon.ts) and the grant table, as plain
 * functions of what they are given.
 *
 * - A door that needs firewalld (a firewalld or SPA door) is armed only once
 *   firewalld answered the config's check; shell-command doors always are.
 * - A grant that ended tells its door's notify_command (notify-hook.ts).
 * - Grants the running config would not make again are closed, each as added
 *   (reload-grants.ts).
 */
import type { Logger } from 'pino';
import type { Grant } from '../firewalld/grant-model';
import type { Grants } from '../firewalld/grants';
import type { RuntimeDoor } from './doors';
import { needsFirewalld, type FirewalldCheck } from './firewall';
import type { NotifyHook } from './notify-hook';
import { grantsToClose } from './reload-grants';

/** The part of the running config these functions read. */
export interface ArmingView {
  doors: RuntimeDoor[];
  /** undefined: no door needs firewalld. */
  firewalld: FirewalldCheck | undefined;
  byName: ReadonlyMap<string, RuntimeDoor>;
}

/** The doors the capture process matches: all, except those needing firewalld while it has not been checked. */
export function armedDoors(rt: ArmingView | undefined): RuntimeDoor[] {
  if (rt === undefined) return [];
  return rt.firewalld === undefined || rt.firewalld.kind === 'ok'
    ? rt.doors
    : rt.doors.filter((d) => !needsFirewalld(d));
}

/** What the firewalld doors wait for, as one line ('' when nothing). */
export function firewalldWait(rt: ArmingView | undefined): string {
  const f = rt?.firewalld;
  if (rt === undefined || f === undefined || f.kind === 'ok') return '';
  const names = rt.doors
    .filter(needsFirewalld)
    .map((d) => d.name)
    .join(', ');
  return f.kind === 'unreachable'
    ? `waiting for firewalld for door(s) ${names}: ${f.why}`
    : `door(s) ${names} not armed: ${f.problems.join('; ')}`;
}

/**
 * A grant ended: its door's notify_command (the door as it is now, by name) gets "close" or "expire" once the
 * last grant of that door and source has gone (a door opening two services notifies once). A rule removed by
 * hand notifies nothing: no knock and no timeout ended it.
 */
export function notifyGrantEnded(
  g: Grant,
  why: 'expire' | 'close' | 'removed',
  held: readonly Grant[],
  rt: ArmingView | undefined,
  notify: NotifyHook,
): void {
  if (why === 'removed') return;
  if (held.some((o) => o.door === g.door && o.src === g.src)) return;
  // The grant's own door; and a close door that ended it, with its own notify_command and name.
  const doors = why === 'close' && g.closedBy !== undefined && g.closedBy !== g.door ? [g.door, g.closedBy] : [g.door];
  for (const name of doors) {
    const cmd = rt?.byName.get(name)?.config.notifyCommand;
    if (cmd !== undefined) void notify.fire(cmd, g.src, name, why);
  }
}

/** Grants the running config would not make again are closed, each as added, in its own zone (reload-grants.ts). */
export function closeGrantsNotMade(
  grants: Grants | undefined,
  rt: ArmingView | undefined,
  log: Logger,
  when: string,
): void {
  if (grants === undefined || rt === undefined) return;
  const close = grantsToClose(grants.list(), rt.doors);
  if (close.length === 0) return;
  for (const { grant: g, why } of close)
    log.warn(
      { src: g.src, door: g.door, zone: g.zone, rule: g.rule },
      `${g.src}: ${g.door}: ${why}: closing its grant ${when} (zone ${g.zone}: ${g.rule})`,
    );
  const picked = new Set(close.map((c) => c.grant));
  void grants.closeWhere((g) => picked.has(g), `its door changed (${when})`);
}
