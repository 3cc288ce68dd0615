/**
 * notify_command (src/daemon/notify-hook.ts) through a real /bin/sh: its
 * bounds (timeout kills, max running drops and counts, the drop line
 * rate-limited), its failures logged, %-substitution that no door name can
 * turn into a command; and the grant table's end event it is driven by
 * (GrantsOptions.onEnd), against the fake firewalld.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { NotifyHook, shellSafe, substitute } from '../../src/daemon/notify-hook';
import { parseConfigText } from '../../src/config/parse';
import { Grants } from '../../src/firewalld/grants';
import { Clock, FakeFirewalld, flush } from './fake-firewalld';

interface Rec {
  level: number;
  msg: string;
  code?: number | null;
  signal?: string | null;
  stderr?: string;
}

function rig(o: ConstructorParameters<typeof NotifyHook>[1] = {}) {
  const lines: Rec[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Rec) });
  return { hook: new NotifyHook(log, o), lines };
}

test('%DOOR% and %IP% cannot inject shell, whatever the quoting around them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notify-'));
  try {
    const pwn = join(dir, 'pwned');
    const door = `a$(touch ${pwn})\`touch ${pwn}\`';touch ${pwn};'"; touch ${pwn}; "|& *`;
    const out = join(dir, 'out');
    const { hook } = rig();
    for (const cmd of [
      `echo "%EVENT% %DOOR% %IP%" >> ${out}`,
      `echo %EVENT% %DOOR% %IP% >> ${out}`,
      `echo '%EVENT% %DOOR% %IP%' >> ${out}`,
    ])
      await hook.fire(cmd, '10.0.0.7', door, 'open');
    assert.equal(existsSync(pwn), false, 'no substituted text ran');
    const safe = shellSafe(door);
    assert.match(safe, /^[A-Za-z0-9._:@+,/_-]+$/);
    assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), [
      `open ${safe} 10.0.0.7`,
      `open ${safe} 10.0.0.7`,
      `open ${safe} 10.0.0.7`,
    ]);
    assert.equal(
      substitute('x %IP% %DOOR% %EVENT% %OTHER%', '2001:db8::/64', 'ssh-door', 'expire'),
      'x 2001:db8::/64 ssh-door expire %OTHER%',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a run past its timeout is killed (whole process group), counted and logged', async () => {
  const { hook, lines } = rig({ timeoutMs: 150 });
  await hook.fire('sleep 30 & sleep 30', '10.0.0.7', 'door', 'close');
  assert.equal(hook.counts.timedOut, 1);
  assert.equal(hook.counts.failed, 1);
  assert.equal(hook.active, 0);
  assert.ok(lines.some((l) => /notify_command \(close\) still running .*bound 150 ms\): killed/.test(l.msg)));
  assert.ok(lines.some((l) => l.signal === 'SIGKILL'));
});

test('beyond the max running, an event is dropped and counted; the drop line is rate-limited', async () => {
  let t = 0;
  const { hook, lines } = rig({ maxRunning: 2, timeoutMs: 200, now: () => t });
  const runs = [1, 2, 3, 4, 5].map((i) => hook.fire('sleep 30', `10.0.0.${i}`, 'door', 'open'));
  assert.equal(hook.active, 2);
  assert.equal(hook.counts.dropped, 3);
  assert.equal(hook.counts.run, 2);
  const drops = () => lines.filter((l) => /not run: 2 already running \(bound 2\)/.test(l.msg)).length;
  assert.equal(drops(), 1, 'one line for three drops');
  t += 60_000;
  void hook.fire('true', '10.0.0.9', 'door', 'open');
  assert.equal(drops(), 2, 'a minute later: logged again');
  await Promise.all(runs);
  assert.equal(hook.active, 0);
  await hook.fire('true', '10.0.0.9', 'door', 'open');
  assert.equal(hook.counts.run, 3, 'runs again once the others have ended');
});

test('a failing run: exit code and stderr tail logged', async () => {
  const { hook, lines } = rig();
  await hook.fire('echo mail: no such user >&2; exit 3', '10.0.0.7', 'door', 'expire');
  const l = lines.find((x) => x.code === 3);
  assert.ok(l, 'exit code logged');
  assert.match(l.msg, /non-zero status code \(3\): mail: no such user/);
  assert.equal(hook.counts.failed, 1);
});

const RULE = (ip: string): string => `rule family="ipv4" source address="${ip}" service name="ssh" accept`;

test('GrantsOptions.onEnd: a close knock, firewalld timer, a removal by hand', async () => {
  const ends: string[] = [];
  const clock = new Clock();
  const fw = new FakeFirewalld(clock, '1.3.3', 'old');
  const grants = new Grants(fw, pino({ level: 'silent' }), {
    now: clock.now,
    setTimer: clock.setTimer,
    onEnd: (g, why) => ends.push(`${g.src} ${why}`),
  });
  const who = (src: string) => ({ src, door: 'd' });
  await grants.open('public', RULE('10.0.0.1'), 30, who('10.0.0.1'));
  await grants.close('public', RULE('10.0.0.1'), who('10.0.0.1'));
  await grants.open('public', RULE('10.0.0.2'), 300, who('10.0.0.2'));
  fw.adminRemove('public', RULE('10.0.0.2'));
  await flush();
  await grants.open('public', RULE('10.0.0.3'), 30, who('10.0.0.3'));
  await clock.advance(40_000);
  await flush();
  assert.deepEqual(ends, ['10.0.0.1 close', '10.0.0.2 removed', '10.0.0.3 expire']);
});

test('notify_command in knockd.conf: kept as written on a firewalld door; refused on a command door; a hostile door name warned', () => {
  const fw = (name: string) =>
    `[${name}]\nsequence = 1,2,3\nfirewalld_action = open\nfirewalld_service = ssh\nnotify_command = echo "%EVENT% %DOOR% %IP%" | mail -s knockd root\n`;
  const r = parseConfigText(fw('openSSH'), 'knockd.conf');
  assert.deepEqual(r.errors, []);
  assert.equal(r.config?.doors[0]?.notifyCommand, 'echo "%EVENT% %DOOR% %IP%" | mail -s knockd root');
  const bad = parseConfigText(`[c]\nsequence = 1,2,3\nstart_command = true\nnotify_command = true\n`, 'knockd.conf');
  assert.match(
    bad.errors.map((e) => `${e.line}: ${e.message}`).join('\n'),
    /4: notify_command runs beside a firewalld or SPA door only/,
  );
  const odd = parseConfigText(fw('a$(x)'), 'knockd.conf');
  assert.ok(
    odd.warnings.some((w) =>
      /door name "a\$\(x\)" has characters the shell could read: %DOOR% gives "a__x_"/.test(w.message),
    ),
  );
});
