/**
 * Lock-out safety (issue #19, item 2), against the lab's real firewalld:
 * `knockd --check` warns, with the line and the fix, about a service a door
 * opens that the zone already opens to everyone (runtime, permanent, both),
 * a well-known example sequence, fewer than 3 knocks, iptables in a command on
 * a firewalld host, a firewall-cmd line with --permanent, and a converted
 * IPv4-only firewall-cmd door an IPv6 knock completes; the daemon logs the
 * same warnings once at start.
 *
 * The lab's firewalld keeps its permanent configuration in the lab's temp dir
 * (the host's /etc/firewalld is never touched). The lab removes ssh from zone
 * public at runtime only: the permanent zone still has it, as a fresh install
 * does. On the old code every warning here is missing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, KNOCKD_BIN, startKnockd, withLab } from './helpers';

const CONF = `[options]
    logfile = /dev/null
[openSSH]
    sequence          = 3333,4444,5555
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
[short]
    sequence      = 4101,4202
    start_command = /usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    cmd_timeout   = 10
    stop_command  = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
[forever]
    sequence      = 5101,5202,5303
    start_command = firewall-cmd --permanent --zone=public --add-rich-rule='rule family="ipv4" source address="%IP%" service name="ssh" accept'
[v4only]
    sequence      = 6101,6202,6303
    start_command = firewall-cmd --zone=public --add-rich-rule="rule family="ipv4" source address="%IP%" port port="2222" protocol="tcp" accept"
    cmd_timeout   = 10
    stop_command  = firewall-cmd --zone=public --remove-rich-rule="rule family="ipv4" source address="%IP%" port port="2222" protocol="tcp" accept"
`;

/** One expected warning: line, door, and what its text must say. */
const EXPECTED: [number, string, RegExp][] = [
  [4, 'openSSH', /sequence 3333,4444,5555 is a well-known example .* Fix: choose your own ports/],
  [
    7,
    'openSSH',
    /service "ssh" is already open to everyone in zone public \(permanent\): the knock protects nothing\. Fix: firewall-cmd --permanent --zone=public --remove-service=ssh/,
  ],
  [9, 'short', /sequence has 2 knock\(s\).* Fix: use at least 3 ports/],
  [10, 'short', /this command runs iptables\/ip6tables on a host where firewalld runs: every firewalld reload .* Fix:/],
  [12, 'short', /this command runs iptables\/ip6tables/],
  [15, 'forever', /this firewall-cmd line has --permanent: .*survives reboots.* Fix: drop --permanent/],
  [18, 'v4only', /an IPv6 knock completes this door, and its rule says family="ipv4".* Fix: add Start_Command_6/],
];

describe('lock-out safety: --check and the start-up log', () => {
  let lab!: Lab;
  withLab({}, (l) => (lab = l));

  const check = async (): Promise<string> => {
    const conf = join(lab.tmpDir, 'lockout.conf');
    await writeFile(conf, CONF);
    const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--check', '-c', conf]);
    assert.equal(r.code, 0, `warnings only: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  test('--check: every lock-out warning, with its line, door and fix', async () => {
    const out = await check();
    for (const [line, door, re] of EXPECTED)
      assert.match(
        out,
        new RegExp(`lockout\\.conf:${line}: warning: \\[${door}\\] ${re.source}`),
        `${line} ${door}:\n${out}`,
      );
    assert.match(out, /OK, 4 door\(s\)/);
  });

  test('--check: ssh open at runtime too says "runtime and permanent" and both fixes; removed everywhere, no warning', async () => {
    await lab.firewallCmd('--zone=public', '--add-service=ssh');
    try {
      assert.match(
        await check(),
        /\[openSSH\] service "ssh" is already open to everyone in zone public \(runtime and permanent\).* Fix: firewall-cmd --zone=public --remove-service=ssh and firewall-cmd --permanent --zone=public --remove-service=ssh/,
      );
    } finally {
      await lab.firewallCmd('--zone=public', '--remove-service=ssh');
    }
    await lab.firewallCmd('--permanent', '--zone=public', '--remove-service=ssh');
    try {
      assert.doesNotMatch(await check(), /already open to everyone/);
    } finally {
      await lab.firewallCmd('--permanent', '--zone=public', '--add-service=ssh');
    }
  });

  test('the daemon logs the same warnings once at start', async () => {
    const d = await startKnockd(lab, CONF);
    try {
      await d.waitForLog(/lock-out check: .*\[v4only\]/, SLOW);
      await d.waitForLog(/lock-out check: .*\[openSSH\] service "ssh" is already open/, SLOW);
      const log = await d.log();
      for (const [line, door] of EXPECTED)
        assert.equal(
          log
            .split('\n')
            .filter((l) => l.includes(`lock-out check: `) && l.includes(`.conf:${line}: warning: [${door}]`)).length,
          1,
          `line ${line} [${door}] once:\n${log}`,
        );
    } finally {
      await d.stop();
    }
  });
});
