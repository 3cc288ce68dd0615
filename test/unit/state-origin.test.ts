/**
 * #18.12: a persisted stop command or grant is taken only if a door of the
 * current configuration could have made it (src/daemon/state-origin.ts, wired
 * through src/state/origin.ts into commands.json and grants.json reads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../../src/config/parse';
import type { DoorConfig } from '../../src/config/types';
import { loadPendingStops } from '../../src/daemon/command-state';
import { grantOrigin, stopOrigin, whyNoDoorMade } from '../../src/daemon/state-origin';

const KEY = Buffer.alloc(32, 7).toString('base64');
const HKEY = Buffer.alloc(64, 9).toString('base64');

const CONF =
  `[openSSH]\n sequence = 1,2,3\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = ssh\n cmd_timeout = 60\n` +
  `[anyZone]\n sequence = 7,8,9\n firewalld_action = open\n firewalld_port = 8443/tcp\n cmd_timeout = 60\n` +
  `[shell]\n sequence = 4,5,6\n start_command = /usr/bin/true start %IP%\n stop_command = /usr/bin/true stop %IP%\n` +
  ` stop_command_6 = /usr/bin/true stop6 %IP%\n cmd_timeout = 30\n` +
  `[shell4]\n sequence = 14,15,16\n start_command = /usr/bin/true s %IP%\n stop_command = /usr/bin/true t %IP%\n` +
  `[spaSSH]\n spa_port = 62201\n spa_key_base64 = ${KEY}\n spa_hmac_key_base64 = ${HKEY}\n spa_open_ports = tcp/22,udp/53\n cmd_timeout = 30\n firewalld_zone = public\n`;

function doors(text = CONF): DoorConfig[] {
  const r = parseConfigText(text, 'knockd.conf');
  assert.deepEqual(r.errors, []);
  return r.config!.doors;
}

const stop = (door: string, src: string, stopCommand: string, family: 4 | 6 = 4) => ({
  door,
  src,
  family,
  stopCommand,
  dueAt: 1,
});

test('18.12: a pending stop is taken only if its door makes exactly that command for that source and family', () => {
  const o = stopOrigin(doors());
  assert.equal(o(stop('shell', '192.0.2.5', '/usr/bin/true stop 192.0.2.5')), undefined);
  assert.equal(o(stop('shell', '2001:db8::5', '/usr/bin/true stop6 2001:db8::5', 6)), undefined);
  // No Stop_Command6: IPv6 uses the IPv4 form, as when the knock came.
  assert.equal(o(stop('shell4', '2001:db8::5', '/usr/bin/true t 2001:db8::5', 6)), undefined);
  assert.match(o(stop('shell', '192.0.2.5', 'touch /tmp/pwned'))!, /stop command for 192.0.2.5 is not this command/);
  // Another source's command, or the IPv4 form for an IPv6 knocker of a door with Stop_Command6.
  assert.match(o(stop('shell', '192.0.2.5', '/usr/bin/true stop 192.0.2.6'))!, /is not this command/);
  assert.match(o(stop('shell', '2001:db8::5', '/usr/bin/true stop 2001:db8::5', 6))!, /is not this command/);
  assert.match(o(stop('gone', '192.0.2.5', '/usr/bin/true stop 192.0.2.5'))!, /door gone is not in the config/);
  assert.match(o(stop('openSSH', '192.0.2.5', 'firewall-cmd x'))!, /runs no shell commands/);
  const noStop = stopOrigin(doors(`[s]\n sequence = 1,2\n start_command = /usr/bin/true %IP%\n`));
  assert.match(noStop(stop('s', '192.0.2.5', '/usr/bin/true 192.0.2.5'))!, /has no stop command for IPv4/);
});

test('18.12: commands.json read with the origin check: a planted command is refused with the file and entry, the rest kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knockd-origin-'));
  try {
    const file = join(dir, 'commands.json');
    const good = stop('shell', '192.0.2.5', '/usr/bin/true stop 192.0.2.5');
    const bad = stop('shell', '192.0.2.5', 'touch /tmp/pwned');
    writeFileSync(file, JSON.stringify({ version: 2, stops: [good, bad] }));
    const read = await loadPendingStops(file, stopOrigin(doors()));
    assert.deepEqual(read.entries, [good]);
    assert.equal(read.problems.length, 1);
    assert.match(
      read.problems[0],
      /commands\.json: entry 2 refused: no door of the current configuration could have made it/,
    );
    assert.match(read.problems[0], /touch \/tmp\/pwned/);
    // Moved aside for a post-mortem, like any damaged file.
    assert.ok(read.movedTo !== undefined && existsSync(read.movedTo));
    assert.equal(readdirSync(dir).filter((f) => f.startsWith('commands.json.corrupt')).length, 1);
    // Without an origin (the old behaviour) the planted command would be taken.
    writeFileSync(file, JSON.stringify({ version: 2, stops: [good, bad] }));
    assert.equal((await loadPendingStops(file)).entries.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const grant = (rule: string, zone = 'public', door = 'openSSH', src = '192.0.2.5') => ({ zone, rule, src, door });
const R = (el: string, src = '192.0.2.5', fam = 4) => `rule family="ipv${fam}" source address="${src}" ${el} accept`;

test('18.12: a grant is taken only if a current door makes that rule for that source in that zone', () => {
  const d = doors();
  assert.equal(whyNoDoorMade(grant(R('service name="ssh"')), d), undefined);
  assert.equal(
    whyNoDoorMade(grant(R('service name="ssh"', '2001:db8::5', 6), 'public', 'openSSH', '2001:db8::5'), d),
    undefined,
  );
  assert.match(
    whyNoDoorMade(grant(R('service name="ssh"'), 'work'), d)!,
    /makes no such rule for 192.0.2.5 in zone work/,
  );
  assert.match(whyNoDoorMade(grant(R('service name="telnet"')), d)!, /makes no such rule/);
  assert.match(whyNoDoorMade(grant(R('service name="ssh"'), 'public', 'gone'), d)!, /door gone is not in the config/);
  assert.match(whyNoDoorMade(grant(R('service name="ssh"'), 'public', 'shell'), d)!, /opens no firewalld rules/);
  // A zone-less door: any zone (firewalld's default zone may have changed since).
  assert.equal(whyNoDoorMade(grant(R('port port="8443" protocol="tcp"'), 'work', 'anyZone'), d), undefined);
  assert.equal(whyNoDoorMade(grant(R('port port="8443" protocol="tcp"'), 'public', 'anyZone'), d), undefined);
  // SPA: one of spa_open_ports, in its zone.
  assert.equal(whyNoDoorMade(grant(R('port port="53" protocol="udp"'), 'public', 'spaSSH'), d), undefined);
  assert.match(whyNoDoorMade(grant(R('port port="23" protocol="tcp"'), 'public', 'spaSSH'), d)!, /spa_open_ports/);
  assert.match(whyNoDoorMade(grant(R('port port="22" protocol="tcp"'), 'work', 'spaSSH'), d)!, /opens in zone public/);
  // The log says what happens to the rule.
  assert.match(
    grantOrigin(d)(grant(R('service name="telnet"')))!,
    /left as it is in firewalld, neither added nor removed/,
  );
});
