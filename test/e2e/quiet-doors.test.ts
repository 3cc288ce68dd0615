/**
 * Quiet single-port doors (issue #19, item 6), in the lab: a one-port door
 * fed a burst of knocks (what real traffic to its port looks like) adds the
 * firewalld rule once and does not refresh it again within Refresh_Interval;
 * a knock after the interval refreshes it once. A command door does not run
 * its start command again while its stop command is pending.
 *
 * On the old code both fail: every knock refreshed the rule (a remove and an
 * add in firewalld) or ran the command again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, sleep, sshRule, startKnockd, type RunningDaemon, withLab } from './helpers';

describe('quiet single-port doors', () => {
  let lab!: Lab;
  withLab({ ipv6: false }, (l) => (lab = l));
  let d: RunningDaemon;
  let marks: string;

  before(async () => {
    marks = join(lab.tmpDir, 'marks');
    d = await startKnockd(
      lab,
      `[options]
    logfile = /dev/null
[one]
    sequence          = 2222
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = 120
    refresh_interval  = 3
[cmd]
    sequence      = 2301:udp
    start_command = /bin/sh -c 'echo START %IP% >> ${marks}'
    cmd_timeout   = 60
    stop_command  = /bin/sh -c 'echo STOP %IP% >> ${marks}'
`,
    );
  });
  after(async () => {
    await d?.stop();
  });

  /** `n` SYNs to `port` from the client, 20 ms apart (new connections, no answer awaited). */
  async function syns(port: number, n: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<void> {
    const py =
      proto === 'tcp'
        ? 'import socket,sys,time\nfor i in range(int(sys.argv[3])):\n  s=socket.socket(); s.setblocking(False)\n  try: s.connect((sys.argv[1],int(sys.argv[2])))\n  except OSError: pass\n  time.sleep(0.02); s.close()'
        : 'import socket,sys,time\nfor i in range(int(sys.argv[3])):\n  socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b"k",(sys.argv[1],int(sys.argv[2]))); time.sleep(0.02)';
    const r = await lab.execIn('client', ['python3', '-c', py, lab.serverAddr, String(port), String(n)]);
    assert.equal(r.code, 0, r.stderr);
  }

  const lines = async (re: RegExp, from: number): Promise<number> =>
    (await d.log())
      .slice(from)
      .split('\n')
      .filter((l) => re.test(l)).length;

  test('a burst of knocks on a one-port firewalld door: one add, no refresh within Refresh_Interval, one after it', async () => {
    const from = (await d.log()).length;
    await syns(2222, 15);
    await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(lab.clientAddr)), SLOW, 50);
    await sleep(500);
    assert.equal(await lines(/one: OPEN SESAME/, from), 15, 'every knock completed the door');
    assert.equal(await lines(/one: firewalld: added in zone public/, from), 1);
    assert.equal(await lines(/one: firewalld: refreshed/, from), 0, 'no refresh within the interval');
    await sleep(3200);
    await syns(2222, 5);
    await d.waitForLog(/one: firewalld: refreshed in zone public/, SLOW, from);
    await sleep(500);
    assert.equal(await lines(/one: firewalld: refreshed/, from), 1, 'one refresh per interval');
  });

  test('a command door does not run its start command again while its stop command is pending', async () => {
    await syns(2301, 10, 'udp');
    await d.waitForLog(/cmd: OPEN SESAME/, SLOW);
    await sleep(1000);
    const text = await readFile(marks, 'utf8');
    assert.equal(text.split('\n').filter((l) => l.startsWith('START')).length, 1, text);
  });
});
