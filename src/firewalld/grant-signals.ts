/**
 * firewalld's `RichRuleRemoved` signals: which grants one may name, and what
 * it means for each once firewalld says whether the rule is still there
 * (removal.ts judges; this file acts).
 */
import { normalizeRichRule } from '../config/firewallcmd';
import type { GrantCore } from './grant-core';
import { grantKey as key, secondsLeft, type Grant } from './grant-model';
import { judgeRemoval } from './removal';

/**
 * firewalld says a rule went, in the caller's words: zone "" is the default
 * zone, the text is normalised. Each grant it may name is judged once
 * firewalld says whether the rule is still there, after whatever we had
 * queued on it (so our own removals and refreshes are judged as such).
 */
export async function onRuleRemoved(core: GrantCore, zoneSaid: string, ruleSaid: string): Promise<void> {
  if (core.list().length === 0) return;
  const rule = normalizeRichRule(ruleSaid);
  let zone: string | undefined = zoneSaid;
  if (zone === '') zone = await core.fw.getDefaultZone().catch(() => undefined);
  // A text we cannot read, or a default zone we cannot learn: every grant it may name is asked about.
  const named = core
    .list()
    .filter((g) => (zone === undefined || g.zone === zone) && (rule === undefined || g.rule === rule));
  await Promise.all(
    named.map((g) =>
      core.serial(key(g.zone, g.rule), () =>
        confirmRemoved(core, g, zoneSaid === g.zone && ruleSaid === g.rule, ruleSaid, 0),
      ),
    ),
  );
}

async function confirmRemoved(
  core: GrantCore,
  g: Grant,
  sameWords: boolean,
  said: string,
  attempt: number,
): Promise<void> {
  const k = key(g.zone, g.rule);
  if (core.get(k) !== g) return;
  const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
  let present: boolean;
  try {
    present = await core.fw.queryRichRule(g.zone, g.rule);
  } catch (err) {
    if (attempt < 5)
      core.setTimer(
        () => void core.serial(k, () => confirmRemoved(core, g, sameWords, said, attempt + 1)),
        core.retryDelays[Math.min(attempt, core.retryDelays.length - 1)],
      );
    else
      core.log.warn(
        { ...ctx, err },
        `${g.src}: ${g.door}: firewalld signalled the removal of ${g.rule} but cannot say whether it is gone; still held`,
      );
    return;
  }
  const now = core.now();
  const verdict = judgeRemoval(g, present, now, !present && core.timers.dueAt(k, now, g.expiresAt));
  switch (verdict) {
    case 'present':
      core.counts.staleSignals++;
      core.log.debug(ctx, `${g.src}: ${g.door}: RichRuleRemoved for ${g.rule}, which firewalld still has: ignored`);
      return;
    case 'not-yet':
      return;
    case 'closed':
      core.untrack(k);
      core.log.info(ctx, `${g.src}: ${g.closedBy ?? g.door}: firewalld: removed from zone ${g.zone}: ${g.rule}`);
      return core.ended(g, 'close');
    case 'expired':
      core.untrack(k);
      core.log.info(ctx, `${g.src}: ${g.door}: firewalld timeout: rule expired in zone ${g.zone}: ${g.rule}`);
      return core.ended(g, 'expire');
    case 'stale-timer':
      core.counts.putBack++;
      core.log.warn(
        ctx,
        `${g.src}: ${g.door}: firewalld's own timer of an earlier grant of this rule removed it (firewalld ${core.policy()?.version ?? ''} keeps the timer of a rule removed in other words); put back: ${g.rule}`,
      );
      g.state = 'opening';
      return core.add(g, secondsLeft(g, core.now()), 'restore');
    case 'by-hand':
      // The old timer code cancels a timer on a removal in the words it was added with.
      if (sameWords) core.timers.cancel(k);
      core.counts.endedByHand++;
      core.untrack(k);
      core.log.warn(
        ctx,
        `${g.src}: ${g.door}: firewalld: rule removed outside knockd (firewall-cmd --remove-rich-rule='${said}'?) in zone ${g.zone}: ${g.rule}; grant ended, it will not be put back`,
      );
      core.ended(g, 'removed');
  }
}
