/**
 * #18.7 sibling: a flood of a sniffed close sequence must not hold back a
 * real client's close. A close completion from a source holding a rule that
 * close removes is never refused by the completion bound; one from a source
 * holding nothing still counts against it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseConfigText } from '../../src/config/parse';
import { Actions } from '../../src/daemon/actions';
import type { CommandRunner } from '../../src/daemon/commands';
import { CompletionLimit } from '../../src/daemon/completions';
import { toRuntimeDoors } from '../../src/daemon/doors';
import type { Grants } from '../../src/firewalld/grants';

const CONF = (zone: string): string =>
  `[openSSH]\n sequence = 1,2,3\n firewalld_action = open\n${zone} firewalld_service = ssh\n cmd_timeout = 60\n` +
  `[closeSSH]\n sequence = 4,5,6\n firewalld_action = close\n${zone} firewalld_service = ssh\n`;

const rule = (src: string): string => `rule family="ipv4" source address="${src}" service name="ssh" accept`;

for (const [name, zoneLine, zone] of [
  ['firewalld_zone = public', ' firewalld_zone = public\n', 'public'],
  ['no firewalld_zone (the default zone has changed since the open)', '', 'work'],
] as const) {
  test(`a sniffed close flood does not hold back a real client's close (${name})`, () => {
    const log = pino({ level: 'silent' });
    const now = 1_000_000; // the clock stands still: the bucket never refills
    const limit = new CompletionLimit(log, 1, () => now);
    const held = [{ zone, rule: rule('192.0.2.7'), src: '192.0.2.7', door: 'openSSH', state: 'open' }];
    const closes: string[] = [];
    const grants = {
      list: () => held,
      held: (z: string, r: string) => held.find((g) => g.zone === z && g.rule === r),
      close: (_z: string, _r: string, who: { src: string }) => {
        closes.push(who.src);
        return Promise.resolve();
      },
    } as unknown as Grants;
    const r = parseConfigText(CONF(zoneLine), 'knockd.conf');
    assert.deepEqual(r.errors, []);
    const close = toRuntimeDoors(r.config!.doors).find((d) => d.name === 'closeSSH')!;
    const host = () => ({ own: new Set<string>(), broadcasts: new Set<string>() });
    const actions = new Actions(
      grants,
      {} as unknown as CommandRunner,
      log,
      () => 'public',
      limit,
      () => now,
      host,
    );
    // The flood: 1 000 spoofed sources holding nothing, far beyond the burst (10).
    for (let i = 0; i < 1000; i++) actions.knock(close, `198.51.100.${i % 250}`, 4);
    assert.equal(closes.length, limit.burst);
    assert.equal(limit.refusedTotal, 1000 - limit.burst);
    // The real client's close gets through although the door is at its bound.
    actions.knock(close, '192.0.2.7', 4);
    assert.equal(closes.at(-1), '192.0.2.7');
    assert.equal(limit.refusedTotal, 1000 - limit.burst);
    // A source holding nothing is still refused.
    actions.knock(close, '198.51.100.1', 4);
    assert.equal(closes.at(-1), '192.0.2.7');
    assert.equal(limit.refusedTotal, 1000 - limit.burst + 1);
  });
}
