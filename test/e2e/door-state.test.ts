/**
 * Issue 10, door-state integrity, against a real firewalld with real packets:
 * the daemon owns exactly the rules it added, for exactly as long as it should.
 * The lab's firewalld runs on a private copy of /etc/firewalld (its own mount
 * namespace), so the --permanent rules these tests write never reach the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import {
  SLOW,
  DEFAULT_CONF,
  KNOCKD_BIN,
  debianKnock,
  sleep,
  sshRule,
  startKnockd,
  type RunningDaemon,
  withLab,
  withDaemon as sharedWithDaemon,
  clearRichRules,
} from './helpers';

let lab!: Lab;
withLab({ ipv6: true }, (l) => (lab = l));

const OPEN = [3333, 4444, 5555];
const CLOSE = [6666, 7777, 8888];
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const cleanRules = (): Promise<void> => clearRichRules(lab);

async function status(): Promise<string> {
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const withDaemon = (
  conf: string,
  fn: (d: RunningDaemon) => Promise<void>,
  args: string[] = [],
  stateDir?: string,
): Promise<void> => sharedWithDaemon(lab, conf, fn, { args, ...(stateDir ? { stateDir } : {}) });

test("1. the admin's own rule (runtime + permanent) is never taken over, timed or removed by knocks", async () => {
  const rule = sshRule(lab.clientAddr);
  await lab.firewallCmd('--permanent', '--zone=public', `--add-rich-rule=${rule}`);
  await lab.firewallCmd('--zone=public', `--add-rich-rule=${rule}`);
  try {
    await withDaemon(DEFAULT_CONF({ cmdTimeout: 2 }), async (d) => {
      await debianKnock(lab, lab.serverAddr, OPEN);
      await d.waitForLog(/openSSH: firewalld: rule present but not added by knockd; left alone/, SLOW);
      assert.doesNotMatch(await status(), /grants held \(1\)/, 'not held as a grant');
      await sleep(3000); // past cmd_timeout: no timeout was put on it
      assert.deepEqual(await lab.richRules(), [rule]);
      const from = (await d.log()).length;
      await debianKnock(lab, lab.serverAddr, CLOSE); // a close knock, as anyone can spoof from the admin's address
      await d.waitForLog(/closeSSH: firewalld: rule present but not added by knockd; left alone/, SLOW, from);
      assert.deepEqual(await lab.richRules(), [rule]);
      assert.match(await lab.firewallCmd('--permanent', '--zone=public', '--list-rich-rules'), new RegExp(esc(rule)));
      assert.doesNotMatch(await d.log(), /removed from zone|refreshed/);
    });
    // The same for tutorial firewall-cmd lines, which are carried out natively.
    const seed =
      `[open]\n sequence = 3333,4444,5555\n command = /bin/firewall-cmd --zone=public --add-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"\n` +
      `[close]\n sequence = 6666,7777,8888\n command = /bin/firewall-cmd --zone=public --remove-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"\n`;
    await lab.firewallCmd('--zone=public', `--add-rich-rule=${rule}`);
    await withDaemon(seed, async (d) => {
      await debianKnock(lab, lab.serverAddr, CLOSE);
      await d.waitForLog(/close: firewalld: rule present but not added by knockd; left alone/, SLOW);
      assert.deepEqual(await lab.richRules(), [rule]);
    });
  } finally {
    await lab.firewallCmd('--permanent', '--zone=public', `--remove-rich-rule=${rule}`);
  }
});

test('2. a rule removed by hand stays removed: through firewall-cmd --reload and a daemon restart', async () => {
  const stateDir = join(lab.tmpDir, 'removed-by-hand');
  const rule = sshRule(lab.clientAddr);
  const d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 300 }), [], { stateDir });
  try {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(async () => (await lab.richRules()).includes(rule), SLOW, 25);
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${rule}`);
    await d.waitForLog(/rule removed outside knockd .*grant ended, it will not be put back/, SLOW);
    await lab.firewallCmd('--reload');
    await lab.firewallCmd('--zone=public', `--change-interface=${lab.serverIf}`);
    await lab.firewallCmd('--zone=public', '--remove-service=ssh');
    await sleep(1500);
    assert.deepEqual(await lab.richRules(), []);
  } finally {
    await d.stop();
  }
  const d2 = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 300 }), [], { stateDir });
  try {
    await sleep(1000);
    assert.deepEqual(await lab.richRules(), [], 'the restart did not bring it back');
    assert.match(await status(), /grants held \(0\)|listening on .*, 0 open/);
  } finally {
    await d2.stop();
    await cleanRules();
  }
});

test('2b. a rule removed while the daemon was down is not put back at the next start (same firewalld)', async () => {
  const stateDir = join(lab.tmpDir, 'removed-while-down');
  const rule = sshRule(lab.clientAddr);
  const d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 300 }), [], { stateDir });
  await debianKnock(lab, lab.serverAddr, OPEN);
  await lab.waitFor(async () => (await lab.richRules()).includes(rule), SLOW, 25);
  await d.stop();
  await lab.firewallCmd('--zone=public', `--remove-rich-rule=${rule}`);
  const d2 = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 300 }), [], { stateDir });
  try {
    await d2.waitForLog(
      /is no longer in zone public \(removed by hand, or a reload, while knockd was not listening\); not put back/,
      SLOW,
    );
    assert.deepEqual(await lab.richRules(), []);
  } finally {
    await d2.stop();
    await cleanRules();
  }
});

test('3. a close firewalld cannot do now is kept as closing (status, STATUS=, state file) and done when firewalld answers; a hung firewalld stalls neither knocks nor shutdown', async () => {
  const stateDir = join(lab.tmpDir, 'closing');
  const rule = sshRule(lab.clientAddr);
  const d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 300 }), [], { stateDir });
  let paused = false;
  try {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(async () => (await lab.richRules()).includes(rule), SLOW, 25);
    lab.pauseFirewalld(true);
    paused = true;
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await d.waitForLog(/closeSSH: OPEN SESAME/, SLOW);
    // Packet handling goes on while the call hangs.
    const from = (await d.log()).length;
    await debianKnock(lab, lab.serverAddr, [3333]);
    await d.waitForLog(/openSSH: Stage 1/, SLOW, from);
    await d.waitForLog(
      /could not remove rule from zone public \(.*no answer from firewalld within 10 s\); kept as closing and retried/,
      SLOW,
    );
    assert.match(await readFile(join(stateDir, 'grants.json'), 'utf8'), /"state":"closing"/);
    assert.match(await status(), /closing \(firewalld has not confirmed the removal; retrying\)/);
    assert.match(await status(), /1 closing \(not yet confirmed by firewalld\)/);
    // The retry of the removal is under way (hung too): a call is in flight when the shutdown comes.
    await d.waitForLog(/retrying 1 rule\(s\) firewalld has not got yet/, SLOW);
    // Shutdown with firewalld still hung: it ends (the daemon gives firewalld SHUTDOWN_FIREWALLD_MS, 5 s, and
    // says so), and the close survives in the state file. SLOW is only how long this test waits for the exit.
    const stopped = await Promise.race([
      d.stop().then(() => true),
      new Promise<boolean>((res) => setTimeout(() => res(false), SLOW).unref()),
    ]);
    assert.ok(stopped, 'knockd did not exit with firewalld hung');
    assert.match(await d.log(), /firewalld did not answer within 5 s; unfinished grants are kept in /);
    assert.match(await readFile(join(stateDir, 'grants.json'), 'utf8'), /"state":"closing"/);
  } finally {
    if (paused) lab.pauseFirewalld(false);
    await d.stop();
  }
  const d2 = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 300 }), [], { stateDir });
  try {
    await lab.waitFor(async () => !(await lab.richRules()).includes(rule), SLOW, 50);
    await d2.waitForLog(/closeSSH: firewalld: (removed from|already gone from) zone public/, SLOW);
  } finally {
    await d2.stop();
    await cleanRules();
  }
});

test("4. no door is open without an end by default: an open door without cmd_timeout gets knockd's 10 s; --check warns about none", async () => {
  const conf = `[open]\n sequence = 3333,4444,5555\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = ssh\n`;
  await withDaemon(conf, async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await d.waitForLog(/open: firewalld: added in zone public: .* \(timeout 10s\)/, SLOW);
  });
  const file = join(lab.tmpDir, 'endless.conf');
  await writeFile(
    file,
    `[a]\n sequence = 1111,2222\n firewalld_action = open\n firewalld_service = ssh\n cmd_timeout = 0\n` +
      `[b]\n sequence = 3333,4444\n command = firewall-cmd --add-rich-rule='rule family="ipv4" source address="%IP%" service name="ssh" accept'\n`,
  );
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--check', '-c', file]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /endless\.conf:5: warning: \[a\] Cmd_Timeout = 0: the rule never expires/);
  assert.match(
    r.stdout,
    /endless\.conf:8: warning: \[b\] firewall-cmd --add-rich-rule with no --timeout, no Stop_Command that removes it and no door that closes it/,
  );
});

test('5. timeouts beyond a Node timer (2^31 ms): firewalld gets the real value and the grant does not "expire" early', async () => {
  const conf =
    `[open]\n sequence = 3333,4444,5555\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = ssh\n cmd_timeout = 3000000\n` +
    `[cmd]\n sequence = 6666,7777,8888\n command = firewall-cmd --zone=public --add-rich-rule='rule family="ipv4" source address="%IP%" port port="2222" protocol="tcp" accept' --timeout=1000h\n`;
  await withDaemon(conf, async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await d.waitForLog(/open: firewalld: added in zone public: .* \(timeout 3000000s\)/, SLOW);
    await d.waitForLog(/cmd: firewalld: added in zone public: .*port="2222".* \(timeout 3600000s\)/, SLOW);
    await sleep(1500);
    const out = await status();
    assert.match(out, /grants held \(2\)/, out);
    assert.match(out, /open\s+public\s+34d/, out);
    assert.doesNotMatch(await d.log(), /expired/);
    assert.equal((await lab.richRules()).length, 2);
  });
});

test('6. damaged state files: moved aside, every valid entry honoured, the error names the file and the entry', async () => {
  const stateDir = join(lab.tmpDir, 'damaged');
  await mkdir(stateDir, { recursive: true });
  const rule = sshRule(lab.clientAddr);
  await lab.firewallCmd('--zone=public', `--add-rich-rule=${rule}`, '--timeout=300');
  const good = {
    zone: 'public',
    rule,
    src: lab.clientAddr,
    door: 'openSSH',
    timeout: 300,
    expiresAt: Date.now() + 290_000,
    state: 'open',
    firewalld: '',
  };
  await writeFile(
    join(stateDir, 'grants.json'),
    `{"version":2,"grants":[\n${JSON.stringify(good)},\n{"zone":"public","rule":"rule family=\\"ipv4\\" accept","src":"10.9.9.9"},\n{"zo`,
  );
  const marker = join(lab.tmpDir, 'stop-ran');
  const stop = {
    door: 'shellDoor',
    src: '10.200.0.9',
    family: 4,
    stopCommand: `echo ran > ${marker}`,
    dueAt: Date.now() - 1000,
  };
  await writeFile(
    join(stateDir, 'commands.json'),
    JSON.stringify({
      version: 1,
      stops: [stop, { door: 'x', src: 'not-an-ip; reboot', family: 4, stopCommand: 'reboot', dueAt: 0 }],
    }),
  );
  // The stop command is taken only because a door of the config makes exactly it (issue 18.12).
  await withDaemon(
    `${DEFAULT_CONF({ cmdTimeout: 300 })}\n[shellDoor]\n sequence = 7001,7002,7003\n start_command = true\n stop_command = echo ran > ${marker}\n`,
    async (d) => {
      const log = await d.waitForLog(/took over 1 grant/, SLOW);
      assert.match(log, /grants\.json: not valid JSON/);
      assert.match(log, /grants\.json: entry 2 refused: rule is not a rich rule in firewalld's canonical text/);
      assert.match(log, /commands\.json: entry 2 refused: not a pending stop command/);
      assert.match(log, /openSSH: firewalld: still open from the previous run in zone public/);
      await lab.waitFor(async () => existsSync(marker), SLOW);
      const files = await readdir(stateDir);
      assert.ok(
        files.some((f) => f.startsWith('grants.json.corrupt-')),
        files.join(' '),
      );
      assert.ok(
        files.some((f) => f.startsWith('commands.json.corrupt-')),
        files.join(' '),
      );
      assert.match(await status(), /grants held \(1\)/);
    },
    [],
    stateDir,
  );
});

test('7. two daemons cannot share a state directory: the second refuses, naming the directory and --state-dir', async () => {
  const stateDir = join(lab.tmpDir, 'shared-state');
  await withDaemon(
    DEFAULT_CONF(),
    async (d) => {
      const second = await lab.execIn(
        'server',
        [process.execPath, KNOCKD_BIN, '-i', lab.serverIf, '-c', d.confFile, '--state-dir', stateDir],
        { timeoutMs: 15_000 },
      );
      assert.equal(second.code, 1, second.stdout + second.stderr);
      assert.match(
        second.stdout + second.stderr,
        new RegExp(`state directory ${esc(stateDir)} is in use by another knockd \\(pid \\d+\\).*--state-dir`),
      );
    },
    [],
    stateDir,
  );
});

test("8. no rule and no command for an impossible source (unspecified, loopback, multicast, broadcast, the server's own)", async () => {
  // Raw Ethernet frames from the client namespace, so the source can be anything.
  const sender = `
import socket, struct, sys
iface, dmac, src, dst = sys.argv[1:5]
ports = [int(p) for p in sys.argv[5:]]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
smac = open('/sys/class/net/%s/address' % iface).read().strip()
eth = lambda et: bytes.fromhex(dmac.replace(':', '')) + bytes.fromhex(smac.replace(':', '')) + struct.pack('!H', et)
def csum(b):
    if len(b) % 2: b += b'\\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
for i, p in enumerate(ports):
    tcp = struct.pack('!HHIIBBHHH', 40000 + i, p, 1000 + i, 0, 5 << 4, 0x02, 64240, 0, 0)
    if ':' in src:
        ip = struct.pack('!IHBB', 6 << 28, len(tcp), 6, 64) + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        s.send(eth(0x86dd) + ip + tcp)
    else:
        h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
        h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
        s.send(eth(0x0800) + h + tcp)
`;
  const mac = (await lab.execIn('server', ['cat', `/sys/class/net/${lab.serverIf}/address`])).stdout.trim();
  const send = async (src: string): Promise<void> => {
    const dst = src.includes(':') ? lab.serverAddr6 : lab.serverAddr;
    const r = await lab.execIn('client', ['python3', '-c', sender, lab.clientIf, mac, src, dst, ...OPEN.map(String)]);
    assert.equal(r.code, 0, r.stderr);
  };
  const net = lab.serverAddr.split('.').slice(0, 3).join('.');
  const impossible = [
    '0.0.0.0',
    '127.0.0.1',
    '224.0.0.1',
    '255.255.255.255',
    `${net}.255`,
    lab.serverAddr,
    '::',
    '::1',
    'ff02::1',
    lab.serverAddr6,
  ];
  await withDaemon(DEFAULT_CONF({ cmdTimeout: 60 }), async (d) => {
    for (const src of impossible) {
      await send(src);
      await d.waitForLog(new RegExp(`${esc(src)}: openSSH: knock from .*: no rule and no command`), SLOW);
    }
    assert.deepEqual(await lab.richRules(), []);
    // Once per source and minute: the same source again is counted, not logged.
    await send('127.0.0.1');
    // The control, sent after it: the same sender from an ordinary (spoofed) address opens the door
    // (and once it has, the daemon has seen the second 127.0.0.1 knock too).
    await send(`${net}.77`);
    await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(`${net}.77`)), SLOW, 25);
    assert.equal((await d.log()).match(/127\.0\.0\.1: openSSH: knock from/g)?.length, 1);
  });
});

test('9. -d passes every other flag through unchanged; a second SIGTERM ends a stalled shutdown', async () => {
  const conf = join(lab.tmpDir, 'detach.conf');
  await writeFile(
    conf,
    `[shellDoor]\n sequence = 3333,4444,5555\n start_command = true\n stop_command = sleep 60\n cmd_timeout = 600\n`,
  );
  const pidFile = join(lab.tmpDir, 'detach.pid');
  // -gdaemonlog: knockd 0.8-style glued value with a "d" in it (old code dropped every "d" of such a word).
  const r = await lab.execIn(
    'server',
    [
      'sh',
      '-c',
      `cd ${lab.tmpDir} && exec "$@"`,
      'sh',
      process.execPath,
      KNOCKD_BIN,
      '-d',
      `-i${lab.serverIf}`,
      '-c',
      conf,
      '-p',
      pidFile,
      '-gdaemonlog',
      '--state-dir',
      join(lab.tmpDir, 'detach-state'),
    ],
    { timeoutMs: 5000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const logFile = join(lab.tmpDir, 'daemonlog');
  await lab.waitFor(async () => /listening on/.test(await readFile(logFile, 'utf8').catch(() => '')), SLOW);
  const pid = Number(
    await lab.waitFor(async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim() || undefined, SLOW),
  );
  await debianKnock(lab, lab.serverAddr, OPEN);
  await lab.waitFor(async () => /shellDoor: command finished/.test(await readFile(logFile, 'utf8')), SLOW);
  process.kill(pid, 'SIGTERM'); // runs the pending stop command now: sleep 60 stalls the shutdown
  await lab.waitFor(async () => /running stop command now/.test(await readFile(logFile, 'utf8')), SLOW);
  // The second SIGTERM ends it: the exit comes before the give-up bound SLOW (30 s), long before sleep 60 would.
  process.kill(pid, 'SIGTERM');
  await lab.waitFor(
    async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    SLOW,
    20,
  );
  assert.match(await readFile(logFile, 'utf8'), /SIGTERM again while shutting down: exiting now/);
});

test('9. SIGHUPs are serialised: after a burst, the config running is the last one written', async () => {
  await withDaemon(DEFAULT_CONF(), async (d) => {
    const one = `[only]\n sequence = 1111,2222,3333\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = ssh\n`;
    const three =
      DEFAULT_CONF() +
      `[third]\n sequence = 4000,5000\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = http\n`;
    for (let i = 0; i < 6; i++) {
      await writeFile(d.confFile, i % 2 ? three : one);
      d.proc.kill('SIGHUP');
      await sleep(5);
    }
    await writeFile(d.confFile, one);
    d.proc.kill('SIGHUP');
    await lab.waitFor(async () => {
      const out = await status();
      return /listening on .*, 1 door,/.test(out) ? out : undefined;
    }, SLOW);
    await sleep(1000);
    assert.match(await status(), /listening on .*, 1 door,/, 'still the last config once every reload is done');
  });
});
