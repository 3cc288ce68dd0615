/**
 * The grant table's calls to firewalld that change it: add (or refresh) a
 * grant's rule, and remove it, each with what a failure means for the grant
 * (kept and retried, or dropped). Called through the table (grants.ts), under
 * the rule's queue.
 */
import { classify, isCode } from './errors';
import type { AddWhy, GrantCore } from './grant-core';
import { grantKey as key, type Grant } from './grant-model';

/**
 * Add (or refresh) `g`'s rule for `seconds` (untimed when knockd owns the
 * expiry). `new`/`reset`: a rule that is already there is not ours (reset:
 * firewalld dropped its runtime rules, one there now is from its permanent
 * config). `refresh`/`restore`/`retry`: ALREADY_ENABLED is our own rule.
 */
export async function addGrant(
  core: GrantCore,
  g: Grant,
  seconds: number,
  why: AddWhy,
  byDoor = g.door,
): Promise<void> {
  const k = key(g.zone, g.rule);
  const { zone, rule, src } = g;
  const ctx = { src, door: byDoor, zone, rule, timeout: seconds };
  if (g.expiresAt > 0 && seconds <= 0) {
    core.untrack(k);
    core.log.info(ctx, `${src}: ${byDoor}: firewalld: ${rule} expired before firewalld could take it; nothing added`);
    return;
  }
  const p = await core.readPolicy();
  const fwTimeout = p.expiry === 'firewalld' ? seconds : 0;
  let verb = why === 'new' ? 'added' : why === 'refresh' ? 'refreshed' : 'restored';
  try {
    if (why === 'refresh' && g.state === 'open' && g.expiry === 'firewalld') {
      // A timed rule of ours: remove + add restarts firewalld's timer.
      await core.fw.removeRichRule(zone, rule).then(
        () => core.timers.cancel(k),
        (e: unknown) => {
          if (!isCode(e, 'NOT_ENABLED')) throw e;
        },
      );
      await core.fw.addRichRule(zone, rule, fwTimeout);
    } else {
      try {
        await core.fw.addRichRule(zone, rule, fwTimeout);
      } catch (err) {
        if (!isCode(err, 'ALREADY_ENABLED')) throw err;
        if (why === 'new' || why === 'reset') {
          if (core.get(k) === g) core.untrack(k);
          core.log.warn(
            ctx,
            `${src}: ${byDoor}: firewalld: rule present but not added by knockd; left alone: zone ${zone}: ${rule}`,
          );
          return;
        }
        if (why !== 'refresh') verb = 'confirmed';
      }
    }
    const confirmedAt = core.now();
    g.expiry = p.expiry;
    g.state = 'open';
    if (seconds > 0 && (p.expiry === 'firewalld' || why === 'new' || why === 'refresh'))
      g.expiresAt = confirmedAt + seconds * 1000;
    if (fwTimeout > 0) core.timers.add(k, g.expiresAt);
    g.firewalld = await core.fw.identity().catch(() => '');
    core.track(k, g);
    core.health?.knowZones([zone]);
    core.confirmed();
    // The same words on every version: who removes it on time is said once, when the version is read.
    const t = seconds > 0 ? `timeout ${seconds}s` : 'no timeout';
    core.log.info(ctx, `${src}: ${byDoor}: firewalld: ${verb} in zone ${zone}: ${rule} (${t})`);
  } catch (err) {
    addFailed(core, g, err, byDoor);
  }
}

function addFailed(core: GrantCore, g: Grant, err: unknown, byDoor: string): void {
  const k = key(g.zone, g.rule);
  const { zone, rule, src } = g;
  const ctx = { src, door: byDoor, zone, rule };
  const { kind, e } = classify(err);
  if (kind === 'refused' && core.health?.judge(zone, e)) {
    g.state = 'opening';
    core.track(k, g);
    core.log.error(
      { ...ctx, err: e },
      `${src}: ${byDoor}: firewalld is broken (${core.health.broken}), not knockd.conf; rule kept and applied when firewalld works again: ${rule}`,
    );
    return;
  }
  if (kind === 'transient') {
    g.state = 'opening';
    core.track(k, g);
    const denied = e.dbusName === 'org.freedesktop.DBus.Error.AccessDenied';
    const limits = e.dbusName === 'org.freedesktop.DBus.Error.LimitsExceeded';
    core.log.error(
      { ...ctx, err: e },
      denied
        ? `${src}: ${byDoor}: the system bus denied the call to firewalld (${e.message}); run knockd as root or allow it in /usr/share/dbus-1/system.d; retrying`
        : limits
          ? `${src}: ${byDoor}: the system bus refused the call (its limit of pending calls; a flood?); rule kept and retried: ${rule} (${e.message})`
          : `${src}: ${byDoor}: firewalld is not reachable; rule kept and applied when firewalld returns: ${rule} (${e.message})`,
    );
    core.scheduleRetry();
    return;
  }
  if (core.get(k) === g) core.untrack(k);
  core.log.error(
    { ...ctx, err: e },
    `${src}: ${byDoor}: firewalld refused rule in zone ${zone}: ${e.message} (check firewalld_zone/firewalld_service in knockd.conf)`,
  );
}

/** A removal we made ends `g` by expiry when nobody closed it and its end has passed, else by a close. */
const endOf = (core: GrantCore, g: Grant): 'expire' | 'close' =>
  g.closedBy === undefined && g.expiresAt > 0 && g.expiresAt <= core.now() ? 'expire' : 'close';

/** Remove `g`'s rule; the grant stays "closing" until firewalld confirms it is gone. */
export async function removeGrant(core: GrantCore, g: Grant, byDoor = g.closedBy ?? g.door): Promise<void> {
  const k = key(g.zone, g.rule);
  const { zone, rule, src } = g;
  const ctx = { src, door: byDoor, zone, rule };
  try {
    await core.fw.removeRichRule(zone, rule);
    core.timers.cancel(k);
    core.untrack(k);
    core.log.info(ctx, `${src}: ${byDoor}: firewalld: removed from zone ${zone}: ${rule}`);
    core.ended(g, endOf(core, g));
  } catch (err) {
    if (isCode(err, 'NOT_ENABLED')) {
      core.untrack(k);
      core.log.info(ctx, `${src}: ${byDoor}: firewalld: already gone from zone ${zone} (expired or removed): ${rule}`);
      core.ended(g, endOf(core, g));
      return;
    }
    const { e } = classify(err);
    core.log.error(
      { ...ctx, err: e },
      `${src}: ${byDoor}: firewalld: could not remove rule from zone ${zone} (${e.message}); kept as closing and retried until firewalld confirms: ${rule}`,
    );
    core.scheduleRetry();
  }
}

/** A close knock for a rule this daemon does not hold: left alone whatever it is (a close can be spoofed from the admin's address); logged. */
export async function closeUnheld(
  core: GrantCore,
  zone: string,
  rule: string,
  who: { src: string; door: string },
): Promise<void> {
  const ctx = { src: who.src, door: who.door, zone, rule };
  let present: boolean;
  try {
    present = await core.fw.queryRichRule(zone, rule);
  } catch (err) {
    core.log.warn(
      { ...ctx, err },
      `${who.src}: ${who.door}: firewalld: not held by knockd, and firewalld cannot say whether it is there (${(err as Error).message}); left alone: ${rule}`,
    );
    return;
  }
  if (present)
    core.log.warn(
      ctx,
      `${who.src}: ${who.door}: firewalld: rule present but not added by knockd; left alone: zone ${zone}: ${rule}`,
    );
  else core.log.info(ctx, `${who.src}: ${who.door}: firewalld: nothing to close in zone ${zone}: ${rule} was not open`);
}
