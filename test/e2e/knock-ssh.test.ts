/**
 * Issue 2, end to end: real firewalld, real sshd, real packets over veth.
 * Our knockd runs in the server namespace; Debian's knock (and a small
 * node knocker for chosen source addresses) in the client namespace.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import {
  SLOW,
  waitExpiredAfter,
  DEFAULT_CONF,
  debianKnock,
  knockFrom,
  sshRule,
  startKnockd,
  type RunningDaemon,
  withLab,
} from './helpers';

describe('knock opens and closes SSH in a real firewalld', () => {
  let lab!: Lab;
  withLab({ extraClientAddrs: 1 }, (l) => (lab = l));

  describe('default config (open 3333,4444,5555 / close 6666,7777,8888)', () => {
    let d: RunningDaemon;
    before(async () => {
      d = await startKnockd(lab, DEFAULT_CONF());
    });
    after(async () => {
      const code = await d?.stop();
      assert.equal(code, 0, 'SIGTERM shuts down cleanly');
    });

    test('1. before any knock the client cannot reach TCP 22', async () => {
      assert.deepEqual(await lab.richRules(), []);
      assert.equal(await lab.sshBanner(), null);
    });

    test('2. Debian knock opens SSH, with exactly the expected rule', async () => {
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      const rules = await lab.waitFor(
        async () => {
          const r = await lab.richRules();
          return r.length ? r : undefined;
        },
        SLOW,
        20,
      );
      assert.deepEqual(rules, [sshRule(lab.clientAddr)]);
      const banner = await lab.sshBanner();
      assert.match(banner ?? '', /^SSH-2\.0-OpenSSH/);
      const log = await d.log();
      assert.match(log, new RegExp(`${lab.clientAddr.replace(/\./g, '\\.')}: openSSH: Stage 1`));
      assert.match(log, /openSSH: Stage 3/);
      assert.match(log, /openSSH: OPEN SESAME/);
      assert.match(log, /firewalld: added in zone public: rule family="ipv4" .* \(timeout 3600s\)/);
    });

    test('3. the close sequence removes the rule and blocks the client again', async () => {
      await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
      await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 20);
      assert.equal(await lab.sshBanner(), null);
      assert.match(await d.log(), /closeSSH: OPEN SESAME/);
      assert.match(await d.log(), /firewalld: removed from zone public/);
    });

    test('a close when nothing is open is logged, not an error', async () => {
      const from = (await d.log()).length;
      await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
      await d.waitForLog(/nothing to close/, SLOW, from);
      assert.equal(d.proc.exitCode, null, 'still running');
    });

    test('5a. wrong order opens nothing', async () => {
      const from = (await d.log()).length;
      await debianKnock(lab, lab.serverAddr, [3333, 5555, 4444]);
      await debianKnock(lab, lab.serverAddr, [4444, 3333, 5555]);
      // Both out-of-order 5555s were seen (and reset the sequence): the daemon says so.
      const wrong = /openSSH: wrong knock tcp\/5555 at stage 1, sequence reset/g;
      await lab.waitFor(async () => ((await d.log()).slice(from).match(wrong) ?? []).length >= 2, SLOW, 50);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch((await d.log()).slice(from), /openSSH: OPEN SESAME/);
      assert.equal(await lab.sshBanner(), null);
    });

    test("5b. knocks sent to an address that is not the server's open nothing", async () => {
      // Make the client send frames for 10.x.y.99 to the server's MAC: the
      // server's interface sees them (pcap is promiscuous) but they are not for it.
      const other = lab.serverAddr.replace(/\.\d+$/, '.99');
      const link = await lab.execIn('server', ['ip', '-j', 'link', 'show', lab.serverIf]);
      const mac = (JSON.parse(link.stdout) as { address: string }[])[0].address;
      await lab.execIn('client', [
        'ip',
        'neigh',
        'replace',
        other,
        'lladdr',
        mac,
        'dev',
        lab.clientIf,
        'nud',
        'permanent',
      ]);
      const from = (await d.log()).length;
      await debianKnock(lab, other, [3333, 4444, 5555]);
      // A knock to the server itself after them: once the daemon has seen it, it has seen those too.
      await debianKnock(lab, lab.serverAddr, [6666]);
      await d.waitForLog(/closeSSH: Stage 1/, SLOW, from);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch((await d.log()).slice(from), /openSSH: Stage/);
    });

    test('6. a knock from one client address never opens the door for another', async () => {
      const other = lab.extraClientAddrs[0];
      await knockFrom(lab, other, lab.serverAddr, [3333, 4444, 5555]);
      await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
      assert.deepEqual(await lab.richRules(), [sshRule(other)]);
      assert.equal(await lab.sshBanner({ source: lab.clientAddr }), null, 'the first address is still blocked');
      assert.match((await lab.sshBanner({ source: other })) ?? '', /^SSH-2\.0-OpenSSH/);
      await knockFrom(lab, other, lab.serverAddr, [6666, 7777, 8888]);
      await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 20);
    });
  });

  test('4. with cmd_timeout = 3 firewalld drops the rule by itself, not before 3 s after the knock', async () => {
    const d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 3 }));
    try {
      const t0 = Date.now();
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
      assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0/);
      await waitExpiredAfter(lab, t0, 3);
      assert.equal(await lab.sshBanner(), null);
    } finally {
      await d.stop();
    }
  });

  test('5c. too slow: a sequence slower than seq_timeout opens nothing', async () => {
    const d = await startKnockd(lab, DEFAULT_CONF({ seqTimeout: 2 }));
    try {
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555], ['-d', '1200']);
      await d.waitForLog(/openSSH: sequence timeout \(stage 2\)/);
      // A knock after the slow one: once the daemon has seen it, it has seen the late 5555 too.
      await debianKnock(lab, lab.serverAddr, [6666]);
      await d.waitForLog(/closeSSH: Stage 1/);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch(await d.log(), /openSSH: OPEN SESAME/);
    } finally {
      await d.stop();
    }
  });

  test('5d. wrong TCP flags: a plain connect (SYN) does not knock a tcpflags=fin door', async () => {
    // A one-port UDP door, knocked after the SYNs, shows when the daemon has seen them.
    const probe = '\n[probe]\n    sequence = 9999:udp\n    start_command = /bin/true\n';
    const d = await startKnockd(lab, DEFAULT_CONF({ tcpflags: 'fin' }) + probe);
    try {
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      await debianKnock(lab, lab.serverAddr, ['9999:udp']);
      await d.waitForLog(/probe: OPEN SESAME/);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch(await d.log(), /(openSSH|closeSSH): Stage 1/);
    } finally {
      await d.stop();
    }
  });

  test('IPv6: a knock over IPv6 opens a family="ipv6" rule', async () => {
    const d = await startKnockd(lab, DEFAULT_CONF());
    try {
      await debianKnock(lab, lab.serverAddr6, [3333, 4444, 5555]);
      await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
      assert.deepEqual(await lab.richRules(), [sshRule(lab.clientAddr6, 6)]);
      assert.match((await lab.sshBanner({ host: lab.serverAddr6 })) ?? '', /^SSH-2\.0-OpenSSH/);
      await debianKnock(lab, lab.serverAddr6, [6666, 7777, 8888]);
      await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 20);
    } finally {
      await d.stop();
    }
  });

  test('start-up refuses a zone or service firewalld does not have, naming the line', async () => {
    const bad = DEFAULT_CONF().replace('firewalld_zone    = public', 'firewalld_zone    = nosuchzone');
    await assert.rejects(startKnockd(lab, bad), /knockd-\d+\.conf:\d+: \[openSSH\] firewalld has no zone "nosuchzone"/);
    const bad2 = DEFAULT_CONF().replace('firewalld_service = ssh', 'firewalld_service = nosuchsvc');
    await assert.rejects(startKnockd(lab, bad2), /firewalld has no service "nosuchsvc"/);
  });
});

describe('-4 (--only-ip-v4)', () => {
  let lab!: Lab;
  withLab({}, (l) => (lab = l));

  test('IPv6 knocks are ignored, IPv4 knocks still open', async () => {
    const d = await startKnockd(lab, DEFAULT_CONF(), ['-4']);
    try {
      await debianKnock(lab, lab.serverAddr6, [3333, 4444, 5555]);
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      // The IPv4 knock came after the IPv6 one: once it has opened, the IPv6 one was seen (or dropped) too.
      await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
      assert.deepEqual(await lab.richRules(), [sshRule(lab.clientAddr)]);
      assert.doesNotMatch(await d.log(), new RegExp(`${lab.clientAddr6.replace(/[.:]/g, '\\$&')}\\S*: openSSH: Stage`));
    } finally {
      await d.stop();
    }
  });
});
