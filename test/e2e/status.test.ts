/** `knockd --status` talks to the running daemon over the (lab's) system bus. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import { SLOW, DEFAULT_CONF, KNOCKD_BIN, debianKnock, startKnockd, withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

test('knockd --status lists the doors and the grants held, with time left', async () => {
  const d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 3600 }));
  try {
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, new RegExp(`^knockd \\S+ \\(pid \\d+\\): listening on ${lab.serverIf}, 2 doors, 1 open`));
    assert.match(out, /openSSH\s+3333:tcp,4444:tcp,5555:tcp\s+firewalld open in zone public: ssh/);
    assert.match(out, /closeSSH\s+6666:tcp,7777:tcp,8888:tcp\s+firewalld close in zone public: ssh/);
    assert.match(out, /grants held \(1\):/);
    const row = out.split('\n').find((l) => l.includes(lab.clientAddr) && l.includes('openSSH'));
    assert.ok(row, out);
    assert.match(
      row,
      /public\s+(59m\d\ds|1h00m)\s+rule family="ipv4" source address="[\d.]+" service name="ssh" accept/,
    );
    assert.match(out, /capture: \d+ frames, 3 knock packets, 0 malformed/);
  } finally {
    await d.stop();
  }
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
  assert.equal(r.code, 1, 'no daemon: exit 1');
  assert.match(r.stderr, /is knockd running\?/);
});
