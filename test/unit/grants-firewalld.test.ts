/**
 * Issue 17/18 (grant side) against the awkward fake firewalld: each firewalld
 * version's timer code, verbatim signals, stale and late timers, refreshes
 * racing firewalld's expiry, a broken firewalld, and the grant bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Grants, type GrantsHealth } from '../../src/firewalld/grants';
import type { FirewalldError } from '../../src/firewalld/client';
import { Clock, FakeFirewalld, flush } from './fake-firewalld';

const RULE = (ip: string): string => `rule family="ipv4" source address="${ip}" service name="ssh" accept`;
const UNQUOTED = (ip: string): string => `rule family=ipv4 source address=${ip} service name=ssh accept`;
const who = (src: string, door = 'openSSH') => ({ src, door });
const K = (ip: string): string => `public|${RULE(ip)}`;

class FakeHealth extends EventEmitter implements GrantsHealth {
  broken = '';
  zones = new Set<string>();
  judge(zone: string, err: FirewalldError): boolean {
    if (err.code !== 'INVALID_ZONE' || !this.zones.has(zone)) return false;
    this.broken = `zone "${zone}" existed and now answers INVALID_ZONE`;
    return true;
  }
  knowZones(zones: Iterable<string>): void {
    for (const z of zones) this.zones.add(z);
  }
}

function rig(
  o: { version?: string; timers?: 'old' | 'new'; stateFile?: string; maxGrants?: number; health?: GrantsHealth } = {},
) {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) },
  );
  const clock = new Clock();
  const fw = new FakeFirewalld(clock, o.version ?? '1.3.3', o.timers ?? 'old');
  const grants = new Grants(fw, log, {
    now: clock.now,
    setTimer: clock.setTimer,
    retryDelaysMs: [1000, 2000],
    ...(o.stateFile ? { stateFile: o.stateFile } : {}),
    ...(o.maxGrants ? { maxGrants: o.maxGrants } : {}),
    ...(o.health ? { health: o.health } : {}),
  });
  const logged = (re: RegExp): boolean => lines.some((l) => re.test(l.msg));
  return { fw, clock, grants, lines, logged };
}

const NEW = { version: '2.5.2', timers: 'new' as const };

test('17.3: on 2.5.2 grants are untimed rules; knockd removes them on time; --reload keeps firewalld working and every grant back', async () => {
  const { fw, clock, grants, logged } = rig(NEW);
  await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
  assert.equal(fw.rules.get(K('10.0.0.7')), 0, 'no firewalld timeout on the new timer code');
  assert.ok(logged(/firewalld 2\.5\.2: .*knockd owns/));
  fw.reload();
  await flush();
  assert.equal(fw.broken, false, 'the reload did not break firewalld');
  assert.ok(fw.rules.has(K('10.0.0.7')), 'grant back after the reload');
  await clock.advance(29_000);
  assert.ok(fw.rules.has(K('10.0.0.7')));
  await clock.advance(1_100);
  assert.ok(!fw.rules.has(K('10.0.0.7')), 'removed by knockd at its end');
  assert.deepEqual(grants.list(), []);
});

test('17.3: old timer code (0.9.3, 1.3.3, 2.3.1, 2.4.0) keeps timed rules; anything newer or unreadable does not', async () => {
  for (const v of ['0.9.3', '1.3.3', '2.3.1', '2.4.0']) {
    const { fw, grants } = rig({ version: v });
    await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
    assert.equal(fw.rules.get(K('10.0.0.7')), 30, v);
  }
  for (const v of ['2.3.3', '2.4.1', '2.4.3', '2.5.0', '3.0.0', 'banana']) {
    const { fw, grants } = rig({ version: v, timers: 'new' });
    await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
    assert.equal(fw.rules.get(K('10.0.0.7')), 0, v);
  }
});

test('17.3: an overdue untimed grant is removed at the next start (SIGKILL case); one firewalld restarted since is left alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'grants-'));
  try {
    const stateFile = join(dir, 'grants.json');
    const base = { zone: 'public', door: 'openSSH', timeout: 30, expiresAt: 900_000, state: 'open', expiry: 'knockd' };
    writeFileSync(
      stateFile,
      JSON.stringify({
        version: 3,
        grants: [
          { ...base, src: '10.0.0.7', rule: RULE('10.0.0.7'), firewalld: '100/:1.5' },
          { ...base, src: '10.0.0.8', rule: RULE('10.0.0.8'), firewalld: '7/:1.1' },
          { ...base, src: '10.0.0.9', rule: RULE('10.0.0.9'), firewalld: '100/:1.5', expiresAt: 1_060_000 },
        ],
      }),
    );
    const { fw, clock, grants, logged } = rig({ ...NEW, stateFile });
    for (const ip of ['10.0.0.7', '10.0.0.8', '10.0.0.9']) fw.rules.set(K(ip), 0);
    await grants.restore(stateFile);
    assert.ok(!fw.rules.has(K('10.0.0.7')), 'overdue, ours: removed at start');
    assert.ok(logged(/10\.0\.0\.7: openSSH: .*outlived its end by 100s .*removing it now/));
    assert.ok(fw.rules.has(K('10.0.0.8')), 'firewalld restarted since: not ours, left alone');
    assert.deepEqual(
      grants.list().map((g) => g.src),
      ['10.0.0.9'],
    );
    await clock.advance(61_000);
    assert.ok(!fw.rules.has(K('10.0.0.9')), 'taken over and removed on time');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const [name, o] of [
  ['1.3.3', {}],
  ['2.5.2', NEW],
] as const) {
  test(`17.4 (${name}): a hand removal in other words (no --zone, unquoted) ends the grant; no --reload brings it back`, async () => {
    const { fw, grants, logged } = rig(o);
    await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
    await grants.open('public', RULE('10.0.0.8'), 300, who('10.0.0.8'));
    fw.adminRemove('', UNQUOTED('10.0.0.7'));
    await flush();
    assert.deepEqual(
      grants.list().map((g) => g.src),
      ['10.0.0.8'],
    );
    assert.ok(logged(/rule removed outside knockd .*grant ended, it will not be put back/));
    fw.reload();
    await flush();
    assert.deepEqual([...fw.rules.keys()], [K('10.0.0.8')]);
    // other attribute order, quoted, with --zone
    fw.adminRemove('public', 'rule source address="10.0.0.8" family="ipv4" accept service name="ssh"');
    await flush();
    assert.deepEqual(grants.list(), []);
  });
}

test('17.4: a RichRuleRemoved for a rule firewalld still has (2.5 stale signal, verbatim words) changes nothing', async () => {
  const { fw, grants } = rig(NEW);
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  fw.emit('ruleRemoved', '', UNQUOTED('10.0.0.7'));
  fw.emit('ruleRemoved', 'public', RULE('10.0.0.7'));
  await flush();
  assert.equal(grants.list().length, 1);
  assert.ok(fw.rules.has(K('10.0.0.7')));
  assert.equal(grants.counts.staleSignals, 2);
  await grants.close('public', RULE('10.0.0.7'), who('10.0.0.7', 'closeSSH'));
  assert.equal(fw.rules.size, 0);
});

test('17 orphan timers (old code): a rule re-added after a hand removal in other words is put back when the old timer removes it', async () => {
  const { fw, clock, grants, logged } = rig();
  await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
  fw.adminRemove('', UNQUOTED('10.0.0.7')); // the timer keyed ("public", canonical) survives
  await flush();
  assert.deepEqual(grants.list(), []);
  await clock.advance(10_000);
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7')); // a new knock
  await clock.advance(21_000); // the orphan timer fires at 30.7 s
  assert.ok(logged(/firewalld's own timer of an earlier grant .*put back/));
  assert.ok(fw.rules.has(K('10.0.0.7')), 'put back');
  assert.equal(grants.list()[0]?.state, 'open');
  await clock.advance(200_000);
  assert.ok(fw.rules.has(K('10.0.0.7')), 'the grant lasts as long as we said');
  await clock.advance(100_000);
  assert.ok(!fw.rules.has(K('10.0.0.7')));
  assert.deepEqual(grants.list(), []);
});

for (const [name, o] of [
  ['1.3.3', {}],
  ['2.5.2', NEW],
] as const) {
  test(`17.2 (${name}): a refresh keeps the grant past its old end, and the close knock still removes it`, async () => {
    const { fw, clock, grants, logged } = rig(o);
    await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
    await clock.advance(25_000);
    await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
    await clock.advance(15_000); // past the old end (and 2.5's stale signal time)
    assert.equal(grants.list().length, 1);
    assert.ok(fw.rules.has(K('10.0.0.7')));
    assert.ok(!logged(/removed outside knockd|not added by knockd/));
    await grants.close('public', RULE('10.0.0.7'), who('10.0.0.7', 'closeSSH'));
    assert.equal(fw.rules.size, 0);
    assert.deepEqual(grants.list(), []);
  });
}

test("18.6: a re-knock racing firewalld's late expiry ends with the rule present and held", async () => {
  const { fw, clock, grants, logged } = rig(); // old timers fire 0.7 s late
  await grants.open('public', RULE('10.0.0.7'), 3, who('10.0.0.7'));
  await clock.advance(3_200); // our end has passed, firewalld's timer has not fired
  assert.equal(grants.list().length, 1, 'held until firewalld says it is gone');
  await grants.open('public', RULE('10.0.0.7'), 3, who('10.0.0.7'));
  await clock.advance(1_000); // firewalld's old timer was cancelled by the refresh's removal
  assert.ok(fw.rules.has(K('10.0.0.7')));
  assert.equal(grants.list()[0]?.state, 'open');
  assert.ok(!logged(/not added by knockd|rule expired/));
  await clock.advance(3_000);
  assert.ok(!fw.rules.has(K('10.0.0.7')));
  assert.deepEqual(grants.list(), []);
});

test('18.6: a timed rule firewalld fails to remove is removed by knockd shortly after its end', async () => {
  const { fw, clock, grants, logged } = rig();
  fw.lateMs = 3_600_000; // firewalld's timer lost
  await grants.open('public', RULE('10.0.0.7'), 3, who('10.0.0.7'));
  await clock.advance(6_100);
  assert.ok(!fw.rules.has(K('10.0.0.7')));
  assert.ok(logged(/firewalld did not remove .* at its timeout .*knockd removes it/));
  assert.deepEqual(grants.list(), []);
});

test('17.6: a broken firewalld (INVALID_ZONE for a zone that existed) is not blamed on knockd.conf; the grant is applied once it works', async () => {
  const health = new FakeHealth();
  health.knowZones(['public']);
  const { fw, grants, logged } = rig({ ...NEW, health });
  fw.broken = true;
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  assert.ok(logged(/firewalld is broken \(zone "public" existed .*\), not knockd\.conf; rule kept/));
  assert.ok(!logged(/check firewalld_zone/));
  assert.deepEqual(
    grants.list().map((g) => g.state),
    ['opening'],
  );
  fw.broken = false;
  health.emit('healed');
  await flush();
  assert.ok(fw.rules.has(K('10.0.0.7')));
  // A zone that never existed is still the config's.
  await grants.open('nosuch', RULE('10.0.0.8'), 300, who('10.0.0.8'));
});

test('18.7: the grant table is bounded; refusals are counted, logged rate-limited, never blamed on knockd.conf', async () => {
  const { fw, clock, grants, lines } = rig({ ...NEW, maxGrants: 3 });
  for (let i = 1; i <= 6; i++) await grants.open('public', RULE(`10.0.1.${i}`), 300, who(`10.0.1.${i}`));
  assert.equal(fw.rules.size, 3);
  assert.equal(grants.counts.refusedFull, 3);
  const full = lines.filter((l) => /grant table full/.test(l.msg));
  assert.equal(full.length, 1, 'one line for three refusals');
  assert.match(full[0].msg, /bound --max-grants 3/);
  assert.doesNotMatch(full[0].msg, /check firewalld_zone/);
  await grants.open('public', RULE('10.0.1.1'), 300, who('10.0.1.1'));
  assert.equal(grants.counts.refusedFull, 3, 'a refresh of a held grant is never refused');
  await clock.advance(11_000);
  await grants.open('public', RULE('10.0.1.9'), 300, who('10.0.1.9'));
  assert.equal(lines.filter((l) => /grant table full/.test(l.msg)).length, 2);
});

test('18.2: a grant keeps its own identity; closeWhere closes the grants of a door as added', async () => {
  const { fw, grants } = rig(NEW);
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7', 'openSSH'));
  await grants.open('public', RULE('10.0.0.8'), 300, who('10.0.0.8', 'other'));
  assert.deepEqual(
    grants.byDoor('openSSH').map((g) => g.rule),
    [RULE('10.0.0.7')],
  );
  await grants.closeWhere((g) => g.door === 'openSSH', 'door removed by a reload');
  assert.deepEqual([...fw.rules.keys()], [K('10.0.0.8')]);
});
