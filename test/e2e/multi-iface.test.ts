/**
 * Several interfaces in one daemon: `Interface = a,b` / `-i a,b` (one capture
 * process, one pcap handle per interface, one attempt table), and `-i any`.
 * The lab has two veth pairs between the namespaces (a server with two NICs
 * on two subnets); knocks come from the client's address on either link.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import { SLOW, KNOCKD_BIN, debianKnock, sshRule, startKnockd, type RunningDaemon, withLab } from './helpers';

const CONF = (iface: string | undefined, target: string): string => `
[options]
    logfile = /dev/null
${iface !== undefined ? `    interface = ${iface}\n` : ''}
[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = 15
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh

[closeSSH]
    sequence          = 6666,7777,8888
    seq_timeout       = 15
    tcpflags          = syn
    firewalld_action  = close
    firewalld_zone    = public
    firewalld_service = ssh

[onlySecond]
    sequence          = 1111,2222
    seq_timeout       = 15
    tcpflags          = syn
    target            = ${target}
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_port    = 2022/tcp
    cmd_timeout       = 2
`;

const portRule = (src: string): string =>
  `rule family="ipv4" source address="${src}" port port="2022" protocol="tcp" accept`;

describe('two interfaces, one daemon', () => {
  let lab!: Lab;
  withLab({ ipv6: false, secondLink: true }, (l) => (lab = l));
  let d: RunningDaemon;

  const hasRule = (rule: string): Promise<boolean> =>
    lab.waitFor(async () => (await lab.richRules()).includes(rule), SLOW, 50);
  const noRules = (): Promise<boolean> => lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 50);
  /** Open from one side (the client's address on that link), check, and close again. */
  async function openAndClose(server: string, client: string): Promise<void> {
    await debianKnock(lab, server, [3333, 4444, 5555]);
    await hasRule(sshRule(client));
    assert.match((await lab.sshBanner({ host: server })) ?? '', /^SSH-2\.0-OpenSSH/);
    await debianKnock(lab, server, [6666, 7777, 8888]);
    await noRules();
  }

  /** Wait until `knockd --status` shows the second link not capturing (and, with `firstListening`, the first one capturing). */
  const secondLinkLost = (timeoutMs: number, firstListening: boolean): Promise<boolean> =>
    lab.waitFor(
      async () => {
        const s = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
        if (s.code !== 0 || (firstListening && !new RegExp(`listening on ${lab.serverIf}\\b`).test(s.stdout)))
          return false;
        return new RegExp(`${lab.serverIf2}\\s+(?!listening)`).test(s.stdout);
      },
      timeoutMs,
      50,
    );

  describe('Interface = a,b in the config, no -i', () => {
    before(async () => {
      d = await startKnockd(lab, CONF(`${lab.serverIf},${lab.serverIf2}`, lab.serverAddr2), [], { iface: null });
      await d.waitForLog(new RegExp(`listening on ${lab.serverIf2}`), SLOW);
    });
    after(async () => {
      await d?.stop();
    });

    test('both interfaces capture; knockd --status lists each', async () => {
      const log = await d.log();
      assert.match(log, /starting up, listening on ks\w+ \(ETHERNET/);
      const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(`^knockd \\S+ \\(pid \\d+\\): listening on ${lab.serverIf}, ${lab.serverIf2}, 3 doors, 0 open`),
      );
      assert.match(
        r.stdout,
        new RegExp(
          `interfaces:\\n\\s+INTERFACE\\s+STATE\\n\\s+${lab.serverIf}\\s+listening \\(ETHERNET\\)\\n\\s+${lab.serverIf2}\\s+listening \\(ETHERNET\\)`,
        ),
      );
    });

    test('a knock opens from either side', async () => {
      await openAndClose(lab.serverAddr, lab.clientAddr);
      await openAndClose(lab.serverAddr2, lab.clientAddr2);
    });

    test("a door's Target still works: only knocks to that address count", async () => {
      await debianKnock(lab, lab.serverAddr, [1111, 2222]);
      await debianKnock(lab, lab.serverAddr2, [1111, 2222]);
      await hasRule(portRule(lab.clientAddr2));
      assert.deepEqual(
        await lab.richRules(),
        [portRule(lab.clientAddr2)],
        "the knock to the first link's address opened nothing",
      );
      await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 100); // cmd_timeout
    });

    test('one link going down does not stop knocks on the other; it is picked up again when it returns', async (t) => {
      const from = (await d.log()).length;
      let r = await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf2, 'down']);
      assert.equal(r.code, 0, r.stderr);
      try {
        // whatever the capture process went through, the first link captures again
        await secondLinkLost(SLOW, true);
        await openAndClose(lab.serverAddr, lab.clientAddr);
        const status = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
        assert.match(status.stdout, new RegExp(`listening on ${lab.serverIf} \\(`), status.stdout);
      } finally {
        r = await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf2, 'up']);
        assert.equal(r.code, 0, r.stderr);
      }
      await d.waitForLog(new RegExp(`listening on ${lab.serverIf2} again`), SLOW, from);
      await openAndClose(lab.serverAddr2, lab.clientAddr2);
      await openAndClose(lab.serverAddr, lab.clientAddr);
      for (const l of (await d.log()).slice(from).split('\n'))
        if (!/Stage|OPEN SESAME|firewalld:/.test(l) && l) t.diagnostic(l);
    });
    test("a flap shorter than the daemon's look at the interfaces (2 s) is picked up too", async () => {
      // libpcap sees the link go and the capture process reports it; the daemon, which looks at the
      // links every 2 s, may never see it down. Three flaps of ~0.2 s: with a 2 s look, at least one is missed.
      for (let i = 0; i < 3; i++) {
        const from = (await d.log()).length;
        let r = await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf2, 'down']);
        assert.equal(r.code, 0, r.stderr);
        try {
          await secondLinkLost(SLOW, false);
        } finally {
          r = await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf2, 'up']);
          assert.equal(r.code, 0, r.stderr);
        }
        await d.waitForLog(new RegExp(`listening on ${lab.serverIf2} again`), SLOW, from);
        await openAndClose(lab.serverAddr2, lab.clientAddr2);
      }
    });
  });

  describe('-i any', () => {
    before(async () => {
      d = await startKnockd(lab, CONF(undefined, lab.serverAddr2), [], { iface: 'any' });
    });
    after(async () => {
      await d?.stop();
    });

    test('Linux cooked capture on every interface; the destination is checked against every local address', async () => {
      assert.match(await d.log(), /starting up, listening on any \(LINKTYPE_LINUX_SLL/);
      await openAndClose(lab.serverAddr, lab.clientAddr);
      await openAndClose(lab.serverAddr2, lab.clientAddr2);
      // a knock to an address the server does not have opens nothing (sent to the server's MAC on the first link)
      const other = lab.serverAddr.replace(/\.1$/, '.77');
      const mac = (await lab.execIn('server', ['cat', `/sys/class/net/${lab.serverIf}/address`])).stdout.trim();
      const n = await lab.execIn('client', [
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
      assert.equal(n.code, 0, n.stderr);
      const from = (await d.log()).length;
      await debianKnock(lab, other, [3333, 4444, 5555]);
      // A knock to the server's own address after them: once the daemon has seen it, it has seen those too.
      await debianKnock(lab, lab.serverAddr, [6666]);
      await d.waitForLog(/closeSSH: Stage 1/, SLOW, from);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch((await d.log()).slice(from), /openSSH: Stage 1/, 'not even a first stage');
    });
  });
  describe('a NIC that appears after the start', () => {
    before(async () => {
      d = await startKnockd(lab, CONF(undefined, lab.serverAddr2), [], {
        iface: `${lab.serverIf},${lab.serverIf.replace(/^ks/, 'kl')}`,
      });
    });
    after(async () => {
      await d?.stop();
    });

    test('is waited for while the others capture, then picked up', async () => {
      const late = lab.serverIf.replace(/^ks/, 'kl');
      const peer = lab.clientIf.replace(/^kc/, 'kl');
      const net = lab.serverAddr2.replace(/^10\.201\./, '10.202.').replace(/\.1$/, '');
      assert.match(await d.log(), new RegExp(`interface ${late} does not exist \\(yet\\); waiting for it`));
      let s = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
      assert.match(s.stdout, new RegExp(`listening on ${lab.serverIf} \\(waiting for ${late}\\)`), s.stdout);
      await openAndClose(lab.serverAddr, lab.clientAddr);
      const r = await lab.execIn('server', ['ip', '-batch', '-'], {
        input: `link add ${late} type veth peer name ${peer} netns ${lab.clientNs}\naddr add ${net}.1/24 dev ${late}\nlink set ${late} up\n`,
      });
      assert.equal(r.code, 0, r.stderr);
      const c = await lab.execIn('client', ['ip', '-batch', '-'], {
        input: `addr add ${net}.2/24 dev ${peer}\nlink set ${peer} up\n`,
      });
      assert.equal(c.code, 0, c.stderr);
      await lab.firewallCmd('--zone=public', `--add-interface=${late}`);
      await d.waitForLog(new RegExp(`listening on ${late} \\(ETHERNET\\)`), SLOW);
      s = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
      assert.match(s.stdout, new RegExp(`listening on ${lab.serverIf}, ${late}, `), s.stdout);
      await openAndClose(`${net}.1`, `${net}.2`);
    });
  });
});
