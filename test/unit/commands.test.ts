import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import {
  CommandRunner,
  loadPendingStops,
  selectCommands,
  substituteIp,
  type CommandDoor,
  type CommandResult,
  type CommandRunnerOptions,
} from '../../src/daemon/commands';
import type { TimerHandle } from '../../src/util/timers';

interface LogRec {
  level: number;
  msg: string;
  stderr?: string;
  stdout?: string;
  code?: number | null;
  signal?: string | null;
}

/** A runner whose log lines and command results land in arrays. */
function rig(opts: CommandRunnerOptions = {}) {
  const lines: LogRec[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogRec) });
  const results: CommandResult[] = [];
  const runner = new CommandRunner(log, {
    ...opts,
    events: {
      ...opts.events,
      finished: (r) => {
        results.push(r);
        opts.events?.finished?.(r);
      },
    },
  });
  const msgs = () => lines.map((l) => l.msg);
  return { runner, lines, results, msgs };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'knockd-cmd-'));
}

function door(extra: Partial<CommandDoor> = {}): CommandDoor {
  return { name: 'openSSH', cmdTimeout: 10, ...extra };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fake timers: nothing fires until the test says so. */
function fakeTimers() {
  let now = 1_000_000;
  const timers: { fn: () => void; at: number; cancelled: boolean }[] = [];
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number): TimerHandle => {
      const t = { fn, at: now + ms, cancelled: false };
      timers.push(t);
      return { cancel: () => void (t.cancelled = true) };
    },
    advance(ms: number) {
      now += ms;
      for (const t of timers) {
        if (!t.cancelled && t.at <= now) {
          t.cancelled = true;
          t.fn();
        }
      }
    },
    live: () => timers.filter((t) => !t.cancelled).length,
  };
}

// ------------------------------------------------------------ substitution and selection

test('substituteIp: every %IP%, IPv4 and IPv6, knockd left-to-right semantics', () => {
  assert.equal(
    substituteIp('iptables -A INPUT -s %IP% -j ACCEPT # %IP%', '10.0.0.2'),
    'iptables -A INPUT -s 10.0.0.2 -j ACCEPT # 10.0.0.2',
  );
  assert.equal(substituteIp('ip6tables -s %IP%/128', '2001:db8::1'), 'ip6tables -s 2001:db8::1/128');
  assert.equal(substituteIp('a %IP%IP% b', '::ffff:1.2.3.4'), 'a ::ffff:1.2.3.4IP% b');
  assert.equal(substituteIp('no token', '1.2.3.4'), 'no token');
  assert.equal(substituteIp('%ip% %IP', '1.2.3.4'), '%ip% %IP');
});

test('substituteIp: anything but an address literal throws, so a packet can never inject shell syntax', () => {
  for (const bad of [
    '',
    'localhost',
    '1.2.3.4; touch /tmp/x',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '$(reboot)',
    '`id`',
    'fe80::1%eth0',
    '[::1]',
    '1.2.3',
    '01.2.3.4',
    '1.2.3.4/32',
    '1.2.3.4\n',
  ]) {
    assert.throws(() => substituteIp('echo %IP%', bad), /not an IPv4\/IPv6 address/, JSON.stringify(bad));
  }
});

test('selectCommands: _6 forms, fallback to IPv4 when absent, empty means nothing', () => {
  const d = door({ startCommand: 'v4 start', stopCommand: 'v4 stop' });
  assert.deepEqual(selectCommands(d, 4), { start: 'v4 start', stop: 'v4 stop' });
  assert.deepEqual(selectCommands(d, 6), { start: 'v4 start', stop: 'v4 stop' });
  const both = door({ startCommand: 'a', startCommand6: 'a6', stopCommand: 'b', stopCommand6: 'b6' });
  assert.deepEqual(selectCommands(both, 4), { start: 'a', stop: 'b' });
  assert.deepEqual(selectCommands(both, 6), { start: 'a6', stop: 'b6' });
  // An explicitly empty _6 does not fall back.
  assert.deepEqual(
    selectCommands(door({ startCommand: 'a', startCommand6: '', stopCommand: 'b', stopCommand6: '' }), 6),
    {},
  );
  assert.deepEqual(selectCommands(door({ startCommand: 'a', stopCommand: 'b', stopCommand6: '' }), 6), { start: 'a' });
  assert.deepEqual(selectCommands(door({ startCommand: '', stopCommand: '' }), 4), {});
  assert.deepEqual(selectCommands(door(), 4), {});
});

test('open: an invalid source throws before anything runs', async () => {
  const { runner, results } = rig();
  assert.throws(() =>
    runner.open(door({ startCommand: 'echo %IP%', stopCommand: 'echo %IP%' }), '1.2.3.4; touch /tmp/x', 4),
  );
  await runner.idle();
  assert.deepEqual(results, []);
  assert.deepEqual(runner.pending(), []);
});

test('open: IPv6 knocker runs the IPv4 command when no _6 form exists; an empty _6 runs nothing', async () => {
  const dir = tmp();
  try {
    const f = join(dir, 'out');
    const { runner, results } = rig();
    runner.open(door({ startCommand: `echo v4 %IP% >> ${f}` }), '2001:db8::9', 6);
    await runner.idle();
    assert.equal(readFileSync(f, 'utf8'), 'v4 2001:db8::9\n');
    runner.open(
      door({ startCommand: `echo v4 %IP% >> ${f}`, startCommand6: '', stopCommand: `echo stop >> ${f}` }),
      '2001:db8::9',
      6,
    );
    await runner.idle();
    assert.equal(results.length, 1);
    assert.deepEqual(runner.pending(), []);
    runner.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('open: no start command means no stop command either (knockd)', async () => {
  const { runner, results } = rig();
  runner.open(door({ stopCommand: 'echo stop' }), '10.0.0.2', 4);
  await runner.idle();
  assert.deepEqual(results, []);
  assert.deepEqual(runner.pending(), []);
});

// ------------------------------------------------------------ the shell gets the bytes

test('the command reaches /bin/sh byte for byte: ; # quotes backslashes', async () => {
  const dir = tmp();
  try {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    const c = join(dir, 'c');
    const { runner, msgs, results } = rig();
    // The tutorial style: a shell inside the shell, ; inside quotes, redirection.
    runner.open(door({ name: 'semi', startCommand: `/bin/sh -c 'echo a; echo b' > ${a}` }), '10.0.0.2', 4);
    // '#' starts a comment for the shell: it must still reach the shell as part of the text.
    runner.open(door({ name: 'hash', startCommand: `echo %IP% > ${b} # not a comment` }), '10.0.0.2', 4);
    runner.open(door({ name: 'quotes', startCommand: `printf '%s\\n' "a\\"b" 'c\\d' x\\ y > ${c}` }), '10.0.0.2', 4);
    await runner.idle();
    assert.equal(readFileSync(a, 'utf8'), 'a\nb\n');
    assert.equal(readFileSync(b, 'utf8'), '10.0.0.2\n');
    assert.equal(readFileSync(c, 'utf8'), 'a"b\nc\\d\nx y\n');
    assert.ok(msgs().includes(`10.0.0.2: hash: running command: echo 10.0.0.2 > ${b} # not a comment`));
    const hash = results.find((r) => r.door === 'hash')!;
    assert.equal(hash.command, `echo 10.0.0.2 > ${b} # not a comment`);
    assert.ok(results.every((r) => r.code === 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exit status, signal, stderr and stdout are logged at the right levels', async () => {
  const { runner, lines } = rig();
  runner.open(door({ name: 'ok', startCommand: 'echo hello; echo warn >&2' }), '10.0.0.2', 4);
  runner.open(door({ name: 'fail', startCommand: 'echo "no such zone" >&2; echo more >&2; exit 3' }), '10.0.0.2', 4);
  runner.open(door({ name: 'sig', startCommand: 'kill -TERM $$' }), '10.0.0.2', 4);
  await runner.idle();

  const ok = lines.find((l) => l.msg.startsWith('10.0.0.2: ok: command finished'))!;
  assert.equal(ok.level, 30);
  assert.equal(ok.code, 0);
  assert.equal(ok.stderr, 'warn');
  const out = lines.find((l) => l.msg === '10.0.0.2: ok: command output: hello')!;
  assert.equal(out.level, 20);
  assert.equal(out.stdout, 'hello');

  const fail = lines.find((l) => l.msg.startsWith('10.0.0.2: fail: command returned non-zero status code (3)'))!;
  assert.equal(fail.level, 40);
  assert.equal(fail.code, 3);
  assert.equal(fail.stderr, 'no such zone\nmore');
  assert.match(fail.msg, /no such zone \| more$/);

  const sig = lines.find((l) => l.msg.startsWith('10.0.0.2: sig: command killed by signal SIGTERM'))!;
  assert.equal(sig.level, 40);
  assert.equal(sig.signal, 'SIGTERM');
  assert.equal(lines.filter((l) => l.msg.includes('running command:')).length, 3);
});

test('a shell that cannot be started is logged as an error', async () => {
  const { runner, lines, results } = rig({ shell: '/nonexistent/sh' });
  runner.open(door({ startCommand: 'true' }), '10.0.0.2', 4);
  await runner.idle();
  assert.equal(results.length, 1);
  assert.equal((results[0].error as NodeJS.ErrnoException).code, 'ENOENT');
  const err = lines.find((l) => l.level === 50)!;
  assert.match(err.msg, /^10\.0\.0\.2: openSSH: error: cannot run command with \/nonexistent\/sh: .*ENOENT/);
});

test('stderr is capped at 4 KiB', async () => {
  const { runner, results } = rig();
  runner.open(door({ startCommand: "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1" }), '10.0.0.2', 4);
  await runner.idle();
  const r = results[0];
  assert.equal(r.code, 1);
  assert.ok(r.stderr.length <= 4096 + 4, `${r.stderr.length}`);
  assert.ok(r.stderr.startsWith('xxxx') && r.stderr.endsWith('[…]'));
});

// ------------------------------------------------------------ stop commands

test('the stop command runs cmdTimeout seconds after the start, after "command timeout"', async () => {
  const dir = tmp();
  try {
    const f = join(dir, 'f');
    const clock = fakeTimers();
    const { runner, msgs, results } = rig({ now: clock.now, setTimer: clock.setTimer });
    const t0 = clock.now();
    runner.open(
      door({ startCommand: `echo start %IP% >> ${f}`, stopCommand: `echo stop %IP% >> ${f}`, cmdTimeout: 0.2 }),
      '10.0.0.2',
      4,
    );
    assert.deepEqual(runner.pending(), [{ door: 'openSSH', src: '10.0.0.2', dueAt: t0 + 200 }]);
    await runner.idle();
    clock.advance(199);
    await runner.idle();
    assert.deepEqual(
      results.map((r) => r.kind),
      ['start'],
      'no stop before cmdTimeout',
    );
    clock.advance(1);
    await runner.idle();
    const stop = results.find((r) => r.kind === 'stop')!;
    assert.equal(stop.command, `echo stop 10.0.0.2 >> ${f}`);
    assert.equal(readFileSync(f, 'utf8'), 'start 10.0.0.2\nstop 10.0.0.2\n');
    const m = msgs().filter((x) => x.includes('running command') || x.includes('command timeout'));
    assert.deepEqual(m, [
      `10.0.0.2: openSSH: running command: echo start 10.0.0.2 >> ${f}`,
      '10.0.0.2: openSSH: command timeout',
      `10.0.0.2: openSSH: running command: echo stop 10.0.0.2 >> ${f}`,
    ]);
    assert.deepEqual(runner.pending(), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the stop command never overtakes a slow start command of the same (door, source)', async () => {
  const dir = tmp();
  try {
    const f = join(dir, 'f');
    const clock = fakeTimers();
    const { runner } = rig({ now: clock.now, setTimer: clock.setTimer });
    runner.open(
      door({ startCommand: `sleep 0.4; echo start >> ${f}`, stopCommand: `echo stop >> ${f}`, cmdTimeout: 0.05 }),
      '10.0.0.2',
      4,
    );
    clock.advance(50); // the stop is due while the start still runs
    await runner.idle();
    assert.equal(readFileSync(f, 'utf8'), 'start\nstop\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a repeated open runs the start again and reschedules the single pending stop', async () => {
  const clock = fakeTimers();
  const { runner, results } = rig({ now: clock.now, setTimer: clock.setTimer });
  const d = door({ startCommand: 'true', stopCommand: 'true', cmdTimeout: 10 });
  runner.open(d, '10.0.0.2', 4);
  const t0 = clock.now();
  assert.deepEqual(runner.pending(), [{ door: 'openSSH', src: '10.0.0.2', dueAt: t0 + 10_000 }]);
  clock.advance(5_000);
  runner.open(d, '10.0.0.2', 4);
  assert.deepEqual(runner.pending(), [{ door: 'openSSH', src: '10.0.0.2', dueAt: t0 + 15_000 }]);
  assert.equal(clock.live(), 1);
  // Another source has its own stop.
  runner.open(d, '10.0.0.3', 4);
  assert.equal(runner.pending().length, 2);
  clock.advance(5_000); // t0+10s: the first schedule would have fired here
  await runner.idle();
  assert.equal(results.filter((r) => r.kind === 'stop').length, 0);
  clock.advance(5_000); // t0+15s
  await runner.idle();
  const stops = results.filter((r) => r.kind === 'stop');
  assert.deepEqual(stops.map((r) => r.src).sort(), ['10.0.0.2', '10.0.0.3']);
  assert.equal(results.filter((r) => r.kind === 'start').length, 3);
  assert.deepEqual(runner.pending(), []);
});

test("a Cmd_Timeout beyond setTimeout's 24.8-day limit does not fire at once", async () => {
  const { runner, results } = rig();
  runner.open(door({ startCommand: 'true', stopCommand: 'true', cmdTimeout: 3_000_000 }), '10.0.0.2', 4);
  await runner.idle();
  await sleep(50);
  assert.equal(results.length, 1);
  assert.equal(runner.pending().length, 1);
  runner.dispose();
  assert.deepEqual(runner.pending(), []);
});

test('flush() runs every pending stop command now and waits for them', async () => {
  const dir = tmp();
  try {
    const f = join(dir, 'f');
    const { runner, results, lines } = rig();
    const d = door({ startCommand: 'true', stopCommand: `echo stop %IP% >> ${f}`, cmdTimeout: 3600 });
    runner.open(d, '10.0.0.2', 4);
    runner.open(d, '2001:db8::2', 6);
    assert.equal(runner.pending().length, 2);
    await runner.flush();
    assert.ok(!lines.some((l) => l.msg.includes('still running')), 'flush waited for the stops, not its timeout');
    assert.deepEqual(runner.pending(), []);
    assert.deepEqual(readFileSync(f, 'utf8').split('\n').filter(Boolean).sort(), ['stop 10.0.0.2', 'stop 2001:db8::2']);
    assert.equal(results.filter((r) => r.kind === 'stop' && r.code === 0).length, 2);
    // After flush, new opens are refused.
    runner.open(d, '10.0.0.4', 4);
    await runner.idle();
    assert.equal(results.length, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flush() is bounded: it kills what still runs and keeps unrun stops in the state file', async () => {
  const dir = tmp();
  try {
    const state = join(dir, 'state.json');
    const { runner, results, lines } = rig({ flushTimeoutMs: 300, stateFile: state });
    runner.open(door({ startCommand: 'sleep 30', stopCommand: 'echo stop %IP%', cmdTimeout: 3600 }), '10.0.0.2', 4);
    await sleep(50);
    await runner.flush();
    // Bounded: the 30 s start was killed at flushTimeoutMs, not waited for.
    const start = results.find((r) => r.kind === 'start')!;
    assert.equal(start.signal, 'SIGKILL');
    const stop = results.find((r) => r.kind === 'stop')!;
    assert.equal(stop.aborted, true); // queued behind the killed start: never ran
    assert.ok(lines.some((l) => l.level === 50 && l.msg.includes('killing 1')));
    const left = (await loadPendingStops(state)).entries;
    assert.deepEqual(
      left.map((s) => [s.door, s.src, s.stopCommand]),
      [['openSSH', '10.0.0.2', 'echo stop 10.0.0.2']],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrency cap: never more than maxConcurrent commands at once, the rest queue', async () => {
  let running = 0;
  let peak = 0;
  const { runner, results } = rig({
    maxConcurrent: 3,
    events: {
      started: () => {
        running++;
        peak = Math.max(peak, running);
      },
      finished: () => void running--,
    },
  });
  for (let i = 1; i <= 10; i++) runner.open(door({ startCommand: 'sleep 0.1' }), `10.0.0.${i}`, 4);
  await runner.idle();
  assert.equal(results.length, 10);
  assert.ok(results.every((r) => r.code === 0));
  assert.equal(peak, 3);
});

// ------------------------------------------------------------ state file

test('state file: written atomically (0600, no temp file left) on every change, and loadable', async () => {
  const dir = tmp();
  try {
    const state = join(dir, 'pending.json');
    const clock = fakeTimers();
    const { runner } = rig({ stateFile: state, now: clock.now, setTimer: clock.setTimer });
    const d = door({
      startCommand: 'true',
      stopCommand: 'firewall-cmd --remove-rich-rule="rule family=ipv4 source address=%IP% accept"',
      stopCommand6: 'echo v6 %IP%',
      cmdTimeout: 30,
    });
    runner.open(d, '10.0.0.2', 4);
    runner.open(d, '2001:db8::2', 6);
    await runner.idle();
    assert.equal(statSync(state).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['pending.json']);
    const loaded = (await loadPendingStops(state)).entries;
    const due = clock.now() + 30_000;
    assert.deepEqual(loaded, [
      {
        door: 'openSSH',
        src: '10.0.0.2',
        family: 4,
        stopCommand: 'firewall-cmd --remove-rich-rule="rule family=ipv4 source address=10.0.0.2 accept"',
        dueAt: due,
      },
      { door: 'openSSH', src: '2001:db8::2', family: 6, stopCommand: 'echo v6 2001:db8::2', dueAt: due },
    ]);
    // Once the stops have run, the file is empty again.
    clock.advance(30_000);
    await runner.idle();
    assert.deepEqual((await loadPendingStops(state)).entries, []);
    assert.deepEqual(readdirSync(dir), ['pending.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadPendingStops: missing file is empty; a damaged file is moved aside and its valid entries kept; restore() reschedules', async () => {
  const dir = tmp();
  try {
    const state = join(dir, 'pending.json');
    assert.deepEqual(await loadPendingStops(state), { entries: [], extra: {}, problems: [] });
    writeFileSync(state, '{not json');
    let r = await loadPendingStops(state);
    assert.deepEqual(r.entries, []);
    assert.match(r.problems[0], /pending\.json: not valid JSON/);
    assert.ok(r.movedTo?.startsWith(`${state}.corrupt-`) && existsSync(r.movedTo), 'moved aside');
    assert.ok(!existsSync(state));

    const good = { door: 'd', src: '10.0.0.9', family: 4, stopCommand: 'true', dueAt: 1 };
    writeFileSync(
      state,
      JSON.stringify({
        version: 1,
        stops: [{ door: 'd', src: '1.2.3.4; reboot', family: 4, stopCommand: 'x', dueAt: 1 }, good],
      }),
    );
    r = await loadPendingStops(state);
    assert.deepEqual(r.entries, [good]);
    assert.match(
      r.problems.join('\n'),
      /pending\.json: entry 1 refused: not a pending stop command .*1\.2\.3\.4; reboot/,
    );
    // Cut short: the whole entry lines before the cut are still honoured.
    const text = `{"version":2,"stops":[\n${JSON.stringify(good)},\n{"door":"e","src":"10.0.0`;
    writeFileSync(state, text);
    r = await loadPendingStops(state);
    assert.deepEqual(r.entries, [good]);
    assert.ok(r.movedTo !== undefined);

    const f = join(dir, 'out');
    writeFileSync(
      state,
      JSON.stringify({
        version: 1,
        stops: [
          { door: 'd', src: '10.0.0.7', family: 4, stopCommand: `echo restored >> ${f}`, dueAt: Date.now() - 1000 },
          { door: 'e', src: '10.0.0.8', family: 4, stopCommand: 'true', dueAt: Date.now() + 3_600_000 },
        ],
      }),
    );
    const { runner, results } = rig();
    runner.restore((await loadPendingStops(state)).entries);
    while (results.length < 1) await sleep(20);
    assert.equal(readFileSync(f, 'utf8'), 'restored\n');
    assert.deepEqual(
      runner.pending().map((p) => p.door),
      ['e'],
    );
    runner.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
