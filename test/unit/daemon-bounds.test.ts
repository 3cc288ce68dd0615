/**
 * The daemon's own bounds and reload rules, with a fake clock and a counting
 * logger: the daemon-side log budget for capture events (issue 18.10), the
 * per-door completion bound (18.7), the pending-commands bound, and which
 * grants a reload closes (18.2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseConfigText } from '../../src/config/parse';
import { CommandRunner } from '../../src/daemon/commands';
import { CompletionLimit } from '../../src/daemon/completions';
import { toRuntimeDoors } from '../../src/daemon/doors';
import { EventLog } from '../../src/daemon/event-log';
import { grantsToClose } from '../../src/daemon/reload-grants';
import type { TimerHandle } from '../../src/util/timers';

interface Rec {
  level: number;
  msg: string;
}

function logger(): { log: pino.Logger; lines: Rec[] } {
  const lines: Rec[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Rec) });
  return { log, lines };
}

test('18.10: 100 000 valid events from the capture process in 0.4 s make at most the budget of lines, and one count', () => {
  const { log, lines } = logger();
  let now = 1_000_000;
  const ev = new EventLog(log, 100, () => now);
  for (let i = 0; i < 100_000; i++) {
    ev.info({ src: '192.0.2.1', door: 'd' }, `192.0.2.1: d: Stage ${(i % 3) + 1}`);
    now += 0.004; // 100 000 events in 400 ms
  }
  now += 1000;
  ev.roll();
  const stage = lines.filter((l) => /Stage/.test(l.msg));
  const summary = lines.filter((l) => /suppressed in the last second/.test(l.msg));
  assert.equal(stage.length, 100);
  assert.equal(summary.length, 1);
  assert.match(summary[0].msg, /^99900 stage\/timeout\/wrong-knock line\(s\)/);
  assert.equal(ev.suppressedTotal, 99_900);
  assert.equal(lines.length, 101);
});

test('18.10 sibling: the capture process\'s summaries and "listening" reports have a budget of their own', () => {
  const { log, lines } = logger();
  let now = 0;
  const ev = new EventLog(log, 5, () => now, 'summary/listening');
  for (let i = 0; i < 10_000; i++) ev.info(undefined, 'listening on eth0 again');
  now += 1000;
  ev.roll();
  assert.equal(lines.filter((l) => l.msg === 'listening on eth0 again').length, 5);
  assert.match(lines.at(-1)!.msg, /^9995 summary\/listening line\(s\) from the capture process suppressed/);
});

test('18.10: the budget is per second: a steady trickle under it loses nothing', () => {
  const { log, lines } = logger();
  let now = 0;
  const ev = new EventLog(log, 100, () => now);
  for (let i = 0; i < 5000; i++) {
    ev.info({ src: '192.0.2.1', door: 'd' }, 'x: d: Stage 1');
    now += 20; // 50 a second
  }
  assert.equal(lines.length, 5000);
  assert.equal(ev.suppressedTotal, 0);
});

test('18.7: 5 000 completions of one door in 10 s: the bucket lets burst + rate x 10 s through, logs once a second, and refills for the real client', () => {
  const { log, lines } = logger();
  let now = 0;
  const lim = new CompletionLimit(log, 5, () => now);
  let passed = 0;
  for (let i = 0; i < 5000; i++) {
    if (lim.take('openSSH', `10.0.${i >> 8}.${i & 255}`)) passed++;
    now += 2; // 5 000 in 10 s
  }
  assert.ok(passed >= 50 + 49 && passed <= 50 + 51, `passed ${passed}`);
  assert.equal(lim.refusedTotal, 5000 - passed);
  const refusals = lines.filter((l) => /completion refused/.test(l.msg));
  assert.ok(refusals.length >= 9 && refusals.length <= 11, `${refusals.length} refusal lines`);
  assert.match(refusals[0].msg, /bound of 5 completions a second \(burst 50; --max-completions\)/);
  // Another door is not affected; and 1 s after the flood the real client passes.
  assert.equal(lim.take('other', '192.0.2.7'), true);
  now += 1000;
  assert.equal(lim.take('openSSH', '192.0.2.7'), true);
});

test('18.7: the pending-commands bound refuses new opens, logs once a second, and frees as stop commands run', async () => {
  const { log, lines } = logger();
  const timers: { fn: () => void; cancelled: boolean }[] = [];
  const setTimer = (fn: () => void): TimerHandle => {
    const t = { fn, cancelled: false };
    timers.push(t);
    return { cancel: () => (t.cancelled = true) };
  };
  const runner = new CommandRunner(log, { shell: '/bin/true', setTimer, maxPending: 3, now: () => 0 });
  const door = { name: 'd', startCommand: 'x %IP%', stopCommand: 'y %IP%', cmdTimeout: 60 };
  for (let i = 1; i <= 10; i++) runner.open(door, `192.0.2.${i}`, 4);
  await runner.idle();
  // Each open holds a start command in flight and a waiting stop until its start has run.
  assert.ok(runner.pending().length >= 1 && runner.pending().length <= 3);
  assert.equal(runner.pending().length + runner.refusedFull, 10);
  const refused = runner.refusedFull;
  assert.equal(lines.filter((l) => /--max-pending-commands 3/.test(l.msg)).length, 1);
  // A source already pending may still re-knock (pushes its stop back).
  runner.open(door, '192.0.2.1', 4);
  assert.equal(runner.refusedFull, refused);
  for (const t of timers) if (!t.cancelled) t.fn();
  await runner.idle();
  assert.equal(runner.pendingCount, 0);
  runner.open(door, '192.0.2.99', 4);
  assert.equal(runner.refusedFull, refused);
  runner.dispose();
});

const CONF = (service: string, zone = ' firewalld_zone = public\n'): string =>
  `[openSSH]\n sequence = 1,2,3\n firewalld_action = open\n${zone} firewalld_service = ${service}\n cmd_timeout = 60\n` +
  `[shell]\n sequence = 4,5,6\n start_command = true %IP%\n`;

const doorsOf = (text: string) => {
  const r = parseConfigText(text, 'knockd.conf');
  assert.deepEqual(r.errors, []);
  return toRuntimeDoors(r.config!.doors);
};

const grant = (service: string, zone = 'public', door = 'openSSH') => ({
  zone,
  rule: `rule family="ipv4" source address="192.0.2.5" service name="${service}" accept`,
  src: '192.0.2.5',
  door,
  state: 'open' as const,
});

test('18.2: a reload closes exactly the grants the new config would not make again', () => {
  const same = doorsOf(CONF('ssh'));
  assert.deepEqual(grantsToClose([grant('ssh')], same), []);
  const changed = grantsToClose([grant('ssh')], doorsOf(CONF('https')));
  assert.equal(changed.length, 1);
  assert.match(changed[0].why, /no longer makes this rule in zone public/);
  assert.match(grantsToClose([grant('ssh', 'public', 'gone')], same)[0].why, /door gone is no longer in the config/);
  assert.match(grantsToClose([grant('ssh', 'public', 'shell')], same)[0].why, /no longer opens firewalld rules/);
  assert.match(grantsToClose([grant('ssh')], doorsOf(CONF('ssh', ' firewalld_zone = work\n')))[0].why, /zone public/);
  // A zone-less door follows the default zone: its grant is kept whichever zone it was added to.
  assert.deepEqual(grantsToClose([grant('ssh', 'work')], doorsOf(CONF('ssh', ''))), []);
  // A grant already closing is left to finish.
  assert.deepEqual(grantsToClose([{ ...grant('ssh'), state: 'closing' as const }], doorsOf(CONF('https'))), []);
});
