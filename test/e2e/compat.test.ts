/**
 * Issue 3, end to end: the configs admins already have.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { SEED_004 } from '../support/seeds';
import type { Lab } from '../lab/lab';
import {
  SLOW,
  waitExpiredAfter,
  KNOCKD_BIN,
  debianKnock,
  knockFrom,
  sleep,
  sshRule,
  startKnockd,
  withLab,
} from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

test('the tutorial config as printed opens and closes SSH natively: no shell, no firewall-cmd process', async () => {
  const trace = join(lab.tmpDir, 'exec.trace');
  const pidFile = join(lab.tmpDir, 'traced.pid');
  // strace follows every process the daemon starts (its capture process included) and records each execve.
  const d = await startKnockd(lab, SEED_004, ['-p', pidFile], {
    wrap: ['strace', '-f', '-qq', '-e', 'trace=execve', '-o', trace],
  });
  try {
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    assert.deepEqual(await lab.richRules(), [sshRule(lab.clientAddr)]);
    assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-OpenSSH/);
    await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
    await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 20);
    assert.equal(await lab.sshBanner(), null);
    const log = await d.log();
    assert.match(
      log,
      /knockd-\d+\.conf:2: \[door1\] directives outside any \[section\]; knockd 0.8 rejects this file. Add a header line such as "\[door1\]"/,
      'the missing headers are explained',
    );
    assert.match(
      log,
      /door1: firewall-cmd command lines carried out natively over D-Bus \(no shell, no firewall-cmd process\): add zone public: rule family="ipv4" source address="%IP%" service name="ssh" accept \(no timeout\)/,
    );
    assert.match(
      log,
      /door2: firewall-cmd command lines carried out natively over D-Bus .*: remove zone public: rule family="ipv4"/,
    );
    assert.match(log, /door1: firewalld: added in zone public: /);
    assert.match(
      log,
      /door2: firewalld: removed from zone public: /,
      'the close door removes the rule the open door added: one grant table',
    );
    assert.doesNotMatch(log, /running command/);
  } finally {
    // SIGTERM to the daemon itself (strace would only detach); strace exits with its tracee.
    process.kill(Number(await readFile(pidFile, 'utf8')), 'SIGTERM');
    await d.stop();
  }
  const execs = (await readFile(trace, 'utf8')).split('\n').filter((l) => l.includes('execve('));
  assert.ok(execs.length >= 2, `the trace saw the daemon and its capture process start: ${execs.join('\n')}`);
  const forbidden = execs.filter((l) => /firewall-cmd|"\/bin\/sh"|python/.test(l));
  assert.deepEqual(forbidden, [], 'no shell and no firewall-cmd were executed');
});

test('start_command/stop_command with cmd_timeout run through the shell, byte for byte', async () => {
  const out = join(lab.tmpDir, 'commands.out');
  const conf = `[options]
  logfile = /dev/null
[shellDoor]
  sequence    = 3333,4444,5555
  tcpflags    = syn
  cmd_timeout = 2
  start_command = /usr/bin/firewall-cmd --zone=public --add-rich-rule='rule family="ipv4" source address="%IP%" service name="ssh" accept' >/dev/null; echo "open %IP%" >> ${out} # a comment for the shell
  stop_command  = /usr/bin/firewall-cmd --zone=public --remove-rich-rule='rule family="ipv4" source address="%IP%" service name="ssh" accept' >/dev/null; echo "close %IP%" >> ${out}
`;
  const d = await startKnockd(lab, conf);
  try {
    const t0 = Date.now();
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-OpenSSH/);
    await waitExpiredAfter(lab, t0, 2); // the stop command ran, not before cmd_timeout
    assert.equal(await readFile(out, 'utf8'), `open ${lab.clientAddr}\nclose ${lab.clientAddr}\n`);
    const log = await d.log();
    assert.match(log, /shellDoor: running command: \/usr\/bin\/firewall-cmd/);
    assert.match(log, /shellDoor: command timeout/);
  } finally {
    await d.stop();
  }
});

test('shutdown runs the stop commands still pending, so a restart never leaves a door open', async () => {
  const out = join(lab.tmpDir, 'pending.out');
  const conf = `[shellDoor]
  sequence      = 3333,4444,5555
  cmd_timeout   = 3600
  start_command = echo "open %IP%" >> ${out}
  stop_command  = echo "close %IP%" >> ${out}
`;
  const d = await startKnockd(lab, conf);
  await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
  await lab.waitFor(async () => (await readFile(out, 'utf8').catch(() => '')).includes('open'), SLOW);
  await sleep(100);
  assert.equal(await d.stop(), 0);
  assert.equal(await readFile(out, 'utf8'), `open ${lab.clientAddr}\nclose ${lab.clientAddr}\n`);
});

test('One_Time_Sequences: a sequence works once, not twice; the used line is disabled with "#" and the next one applies', async () => {
  const file = join(lab.tmpDir, 'onetime.seq');
  await writeFile(file, '# used before\n1111,2222,3333\n4444,5555:udp,6666\n');
  const conf = `[oneTime]
  one_time_sequences = ${file}
  seq_timeout        = 10
  tcpflags           = syn
  firewalld_action   = open
  firewalld_zone     = public
  firewalld_service  = ssh
  cmd_timeout        = 60
`;
  const d = await startKnockd(lab, conf);
  try {
    await debianKnock(lab, lab.serverAddr, [1111, 2222, 3333]);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`);
    await d.waitForLog(/oneTime: next one-time sequence from .* line 3/, SLOW);
    assert.equal(await readFile(file, 'utf8'), '# used before\n#111,2222,3333\n4444,5555:udp,6666\n');
    // The same sequence again opens nothing.
    await debianKnock(lab, lab.serverAddr, [1111, 2222, 3333]);
    await sleep(700);
    assert.deepEqual(await lab.richRules(), []);
    // The next line does.
    await debianKnock(lab, lab.serverAddr, ['4444', '5555:udp', '6666']);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    await d.waitForLog(
      /no more sequences left in the one time sequences file .* for door oneTime --> disabling the door/,
      SLOW,
    );
    assert.equal(await readFile(file, 'utf8'), '# used before\n#111,2222,3333\n#444,5555:udp,6666\n');
  } finally {
    await d.stop();
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`).catch(() => '');
  }
});

test('UseSyslog: knockd lines reach the system log with tag knockd', async () => {
  const sock = join(lab.tmpDir, 'syslog.sock');
  const rx = spawn(
    'python3',
    [
      '-c',
      `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("BOUND", flush=True)
while True:
    print(s.recv(65536).decode(errors="replace"), flush=True)
`,
      sock,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let got = '';
  rx.stdout.on('data', (c: Buffer) => (got += c.toString()));
  try {
    await lab.waitFor(async () => got.includes('BOUND'), SLOW);
    const conf = `[options]\n  UseSyslog\n[door]\n  sequence = 3333,4444,5555\n  start_command = /bin/true\n`;
    const d = await startKnockd(lab, conf, [], { env: { KNOCKD_SYSLOG_SOCKET: sock } });
    try {
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      await lab.waitFor(async () => /knockd\[\d+\]: [\d.]+: door: OPEN SESAME/.test(got), SLOW);
      assert.match(got, /<14>.*knockd\[\d+\]: starting up, listening on/);
      assert.match(got, /<14>.*knockd\[\d+\]: [\d.]+: door: Stage 1/);
    } finally {
      await d.stop();
    }
  } finally {
    rx.kill();
  }
});

test('knockd --check with firewalld reachable: unknown zone/service, and knock ports the zone already opens', async () => {
  const conf = join(lab.tmpDir, 'check.conf');
  await writeFile(
    conf,
    `[a]\n  sequence = 546:udp,3333\n  firewalld_action = open\n  firewalld_zone = public\n  firewalld_service = ssh\n` +
      `[b]\n  sequence = 4000,5000\n  firewalld_action = open\n  firewalld_zone = nosuchzone\n  firewalld_service = nosuchsvc\n` +
      `[c]\n  sequence = 6000,7000\n  command = /usr/bin/firewall-cmd --zone=otherzone --add-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"\n`,
  );
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--check', '-c', conf]);
  assert.equal(r.code, 0, 'warnings only');
  assert.match(r.stdout, /check\.conf:2: warning: \[a\] knock port 546\/udp is open in zone public/);
  assert.match(r.stdout, /check\.conf:10: warning: \[b\] firewalld has no service "nosuchsvc"/);
  assert.match(r.stdout, /check\.conf:9: warning: \[b\] firewalld has no zone "nosuchzone"/);
  assert.match(r.stdout, /check\.conf:13: warning: \[c\] firewalld has no zone "otherzone"/);
});

test('-l: knockers are named in the log (hosts file, looked up off the packet path)', async () => {
  // `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts for what it runs.
  const dir = join('/etc/netns', lab.serverNs);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'hosts'), `127.0.0.1 localhost\n${lab.clientAddr} laptop.knock.test\n`);
  try {
    const d = await startKnockd(lab, `[door]\n  sequence = 3333,4444,5555\n  start_command = /bin/true\n`, ['-l']);
    try {
      await knockFrom(lab, lab.clientAddr, lab.serverAddr, [3333, 4444, 5555], 100);
      await d.waitForLog(
        new RegExp(`${lab.clientAddr.replace(/\./g, '\\.')} \\(laptop\\.knock\\.test\\): door: OPEN SESAME`),
        SLOW,
      );
    } finally {
      await d.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('-d detaches: the command returns at once, the pid file names the daemon, SIGTERM stops it and removes the pid file', async () => {
  const pidFile = join(lab.tmpDir, 'detached.pid');
  const conf = join(lab.tmpDir, 'detached.conf');
  const log = join(lab.tmpDir, 'detached.log');
  await writeFile(conf, `[door]\n  sequence = 3333,4444,5555\n  start_command = /bin/true\n`);
  const r = await lab.execIn(
    'server',
    [
      process.execPath,
      KNOCKD_BIN,
      '-d',
      '-i',
      lab.serverIf,
      '-c',
      conf,
      '-p',
      pidFile,
      '-g',
      log,
      '--state-dir',
      join(lab.tmpDir, 'detached-state'),
    ],
    { timeoutMs: 5000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const pid = await lab.waitFor(
    async () => Number((await readFile(pidFile, 'utf8').catch(() => '')).trim()) || undefined,
    SLOW,
  );
  await lab.waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).includes('listening on'), SLOW);
  await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
  await lab.waitFor(async () => (await readFile(log, 'utf8')).includes('door: OPEN SESAME'), SLOW);
  process.kill(pid, 'SIGTERM');
  await lab.waitFor(
    async () =>
      !(await readFile(pidFile, 'utf8').then(
        () => true,
        () => false,
      )),
    SLOW,
  );
  // Gone, or a zombie waiting for whoever adopted it (in a container that may be nobody).
  const state = async (): Promise<string> => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
    return status === undefined ? 'gone' : (/^State:\s+(\S)/m.exec(status)?.[1] ?? '?');
  };
  const end = await lab.waitFor(async () => {
    const st = await state();
    return st === 'Z' || st === 'gone' ? st : undefined;
  }, 5000);
  assert.match(end, /^(Z|gone)$/);
});

test('SIGHUP: a valid new config replaces the old without losing attempts in flight; SIGUSR1 and SIGHUP reopen a rotated log', async () => {
  const out = join(lab.tmpDir, 'hup.out');
  const v1 = `[door]\n  sequence = 3333,4444,5555\n  seq_timeout = 20\n  start_command = echo "door %IP%" >> ${out}\n`;
  // The new door knocks ports the capture filter already has: a reload that changes the filter starts a new capture
  // process (issue 18.9: the filter is locked in each), which has no attempts in flight.
  const v2 = `${v1}[other]\n  sequence = 4444,3333\n  start_command = echo "other %IP%" >> ${out}\n`;
  const d = await startKnockd(lab, v1);
  try {
    await knockFrom(lab, lab.clientAddr, lab.serverAddr, [3333, 4444]);
    await d.waitForLog(/door: Stage 2/, SLOW);
    await writeFile(d.confFile, v2);
    const from = (await d.log()).length;
    process.kill(d.proc.pid!, 'SIGHUP');
    await d.waitForLog(/configuration reloaded from .*: 2 door\(s\)/, SLOW, from);
    await knockFrom(lab, lab.clientAddr, lab.serverAddr, [5555]); // completes the attempt begun before the reload
    await knockFrom(lab, lab.clientAddr, lab.serverAddr, [4444, 3333]); // the new door works
    await lab.waitFor(async () => (await readFile(out, 'utf8').catch(() => '')).includes('other'), SLOW);
    assert.equal(await readFile(out, 'utf8'), `door ${lab.clientAddr}\nother ${lab.clientAddr}\n`);

    // logrotate: move the file away, signal, and the daemon writes a new one.
    await rename(d.logFile, `${d.logFile}.1`);
    process.kill(d.proc.pid!, 'SIGUSR1');
    await lab.waitFor(
      async () => (await readFile(d.logFile, 'utf8').catch(() => '')).includes('log file reopened'),
      SLOW,
    );
    await knockFrom(lab, lab.clientAddr, lab.serverAddr, [4444, 3333]);
    await lab.waitFor(
      async () => (await readFile(d.logFile, 'utf8').catch(() => '')).includes('other: OPEN SESAME'),
      SLOW,
    );
    assert.match(
      await readFile(`${d.logFile}.1`, 'utf8'),
      /configuration reloaded/,
      'older lines stay in the rotated file',
    );
  } finally {
    await d.stop();
  }
});
