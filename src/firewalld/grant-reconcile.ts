/**
 * A grant whose rule may or may not still be in firewalld (a daemon restart
 * took it over from the state file, or the bus connection came back and
 * signals may have been missed): what firewalld says now decides whether it
 * is ours, gone, or to be put back. Called under the rule's queue.
 */
import { readStateFile } from '../state/statefile';
import { withOrigin, type EntryOrigin } from '../state/origin';
import { classify } from './errors';
import { validGrantEntry } from './grant-entry';
import type { GrantCore } from './grant-core';
import { grantKey as key, secondsLeft, type Grant } from './grant-model';

/** grants.json's format version (1 and 2 are still read). */
export const GRANTS_STATE_VERSION = 3;

/**
 * The grants a previous run held (state file) that may still be live: a
 * damaged file is moved aside with its valid entries still honoured (`hold`:
 * the file is not rewritten when it could not be read); an entry `origin`
 * refuses is logged and dropped.
 */
export async function readPreviousGrants(
  core: GrantCore,
  file: string,
  origin: EntryOrigin<Grant> | undefined,
  hold: (why: string) => void,
): Promise<Grant[]> {
  const check = withOrigin(validGrantEntry, origin);
  const read = await readStateFile(file, 'grants', [1, 2, GRANTS_STATE_VERSION], check, core.now);
  for (const p of read.problems) core.log.error(p);
  if (read.movedTo)
    core.log.error(
      `${file}: moved aside to ${read.movedTo}; its ${read.entries.length} valid entr${read.entries.length === 1 ? 'y is' : 'ies are'} honoured`,
    );
  if (read.keep) hold('could not be read at start-up');
  const now = core.now();
  return read.entries.filter(
    (g) => g.state === 'closing' || g.expiry === 'knockd' || g.expiresAt === 0 || g.expiresAt > now,
  );
}

/**
 * A grant whose rule may or may not still be in firewalld (daemon restart,
 * bus reconnect). There: ours as it was (overdue and knockd's to end: removed
 * now, if firewalld is the one we added it to). Gone, and firewalld has
 * restarted since we last saw the rule: lost to the restart, put back. Gone
 * otherwise (removed by hand, or a reload, while we were not listening: we
 * cannot tell which): left gone, the admin's removal wins.
 */
export async function reconcileGrant(core: GrantCore, g: Grant, why: string): Promise<void> {
  const k = key(g.zone, g.rule);
  const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
  core.track(k, g);
  if (g.state === 'closing') return core.remove(g);
  let present: boolean;
  let fwid: string;
  try {
    present = await core.fw.queryRichRule(g.zone, g.rule);
    fwid = await core.fw.identity();
  } catch (err) {
    const { kind, e } = classify(err);
    if (kind === 'refused') {
      core.untrack(k);
      core.log.error(
        { ...ctx, err: e },
        `${g.src}: ${g.door}: firewalld refused to say whether ${g.rule} is in zone ${g.zone} (${e.message}); grant dropped`,
      );
      return;
    }
    g.state = 'opening';
    core.track(k, g);
    core.log.error(
      { ...ctx, err: e },
      `${g.src}: ${g.door}: firewalld is not reachable (${e.message}); ${g.rule} is checked again when it returns`,
    );
    core.scheduleRetry();
    return;
  }
  const overdue = g.expiresAt > 0 && g.expiresAt <= core.now();
  const sameFirewalld = g.firewalld !== '' && g.firewalld === fwid;
  if (present && overdue) {
    if (g.expiry === 'knockd' && sameFirewalld && g.state === 'open') {
      const ago = Math.round((core.now() - g.expiresAt) / 1000);
      core.log.warn(
        ctx,
        `${g.src}: ${g.door}: firewalld: ${g.rule} outlived its end by ${ago}s (knockd was not running then); removing it now`,
      );
      g.state = 'closing';
      core.track(k, g);
      return core.remove(g);
    }
    if (g.expiry === 'firewalld') {
      g.state = 'open';
      g.firewalld = fwid;
      return core.track(k, g); // firewalld's timer is due: checked at once, removed by us if it is late
    }
    core.untrack(k);
    core.log.warn(
      ctx,
      `${g.src}: ${g.door}: firewalld: ${g.rule} in zone ${g.zone} is past its end, but firewalld restarted since: this one is not knockd's; left alone`,
    );
    return;
  }
  if (present) {
    g.state = 'open';
    g.firewalld = fwid;
    core.track(k, g);
    core.log.info(ctx, `${g.src}: ${g.door}: firewalld: still open ${why} in zone ${g.zone}: ${g.rule}`);
    return;
  }
  if (overdue) {
    core.untrack(k);
    core.log.info(ctx, `${g.src}: ${g.door}: firewalld: ${g.rule} ended while knockd was not running; already gone`);
    return;
  }
  if (g.state === 'opening' || (g.firewalld !== '' && g.firewalld !== fwid)) {
    // Never reached firewalld, or firewalld restarted since (its runtime rules died with it): ours to put back.
    return core.add(g, secondsLeft(g, core.now()), 'restore');
  }
  core.untrack(k);
  core.log.warn(
    ctx,
    `${g.src}: ${g.door}: firewalld: ${g.rule} is no longer in zone ${g.zone} (removed by hand, or a reload, while knockd was not listening); not put back`,
  );
}
