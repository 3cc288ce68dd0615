/**
 * The grant table against a fake firewalld (fake-firewalld.ts: verbatim
 * signals, the old and the new timer code, late timers) and a fake clock. The
 * end-to-end tests prove the same against a real firewalld.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Grants } from '../../src/firewalld/grants';
import { Clock, FakeFirewalld, flush, unreachable } from './fake-firewalld';

const RULE = (ip: string): string => `rule family="ipv4" source address="${ip}" service name="ssh" accept`;
const who = (src: string) => ({ src, door: 'openSSH' });

function rig(opts: { stateFile?: string; version?: string; timers?: 'old' | 'new'; maxGrants?: number } = {}) {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) },
  );
  const clock = new Clock();
  const fw = new FakeFirewalld(clock, opts.version ?? '1.3.3', opts.timers ?? 'old');
  const grants = new Grants(fw, log, {
    now: clock.now,
    setTimer: clock.setTimer,
    retryDelaysMs: [1000, 2000],
    ...(opts.stateFile ? { stateFile: opts.stateFile } : {}),
    ...(opts.maxGrants ? { maxGrants: opts.maxGrants } : {}),
  });
  const logged = (re: RegExp): boolean => lines.some((l) => re.test(l.msg));
  return { fw, clock, grants, lines, logged };
}

test('1. a rule already in firewalld that we did not add is left exactly as it is: no remove, no timeout, not held', async () => {
  const { fw, grants, logged } = rig();
  fw.rules.set(`public|${RULE('10.0.0.7')}`, 0); // the admin's
  await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
  assert.deepEqual(fw.calls, [`add ${RULE('10.0.0.7')} 30`]);
  assert.equal(fw.rules.get(`public|${RULE('10.0.0.7')}`), 0, 'no timeout put on it');
  assert.deepEqual(grants.list(), []);
  assert.ok(logged(/rule present but not added by knockd; left alone/));
});

test("1. a close knock never removes a rule this daemon does not hold (spoofed close from the admin's address)", async () => {
  const { fw, grants, logged } = rig();
  fw.rules.set(`public|${RULE('10.0.0.7')}`, 0);
  await grants.close('public', RULE('10.0.0.7'), who('10.0.0.7'));
  assert.ok(fw.rules.has(`public|${RULE('10.0.0.7')}`));
  assert.ok(!fw.calls.some((c) => c.startsWith('remove')));
  assert.ok(logged(/rule present but not added by knockd; left alone/));
  await grants.close('public', RULE('10.0.0.8'), who('10.0.0.8'));
  assert.ok(logged(/nothing to close in zone public/));
});

test('1. our own rule: a second open refreshes it (remove + add) and a close removes it', async () => {
  const { fw, grants } = rig();
  await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
  await grants.open('public', RULE('10.0.0.7'), 60, who('10.0.0.7'));
  assert.deepEqual(fw.calls.slice(1), [`remove ${RULE('10.0.0.7')}`, `add ${RULE('10.0.0.7')} 60`]);
  assert.equal(grants.list().length, 1, 'our own remove during the refresh did not end the grant');
  await grants.close('public', RULE('10.0.0.7'), who('10.0.0.7'));
  assert.equal(fw.rules.size, 0);
  assert.deepEqual(grants.list(), []);
});

test('2. a rule removed by hand ends the grant; a reload or firewalld restart does not bring it back', async () => {
  const { fw, grants, logged } = rig();
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  await grants.open('public', RULE('10.0.0.8'), 300, who('10.0.0.8'));
  fw.adminRemove('public', RULE('10.0.0.7'));
  await flush();
  assert.deepEqual(
    grants.list().map((g) => g.src),
    ['10.0.0.8'],
  );
  assert.ok(logged(/rule removed outside knockd .*grant ended, it will not be put back/));
  fw.rules.clear();
  fw.emit('reloaded');
  await flush();
  assert.deepEqual(
    [...fw.rules.keys()],
    [`public|${RULE('10.0.0.8')}`],
    'only the rule lost to the reload is restored',
  );
});

test('2. firewalld\'s own timeout (RichRuleRemoved at expiry) ends the grant as "expired", not as removed by hand', async () => {
  const { fw, clock, grants, logged } = rig();
  await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
  clock.t += 29_500;
  fw.adminRemove('public', RULE('10.0.0.7'));
  await flush();
  assert.deepEqual(grants.list(), []);
  assert.ok(logged(/firewalld timeout: rule expired/));
  assert.ok(!logged(/removed outside knockd/));
});

test('2. after a firewalld restart a rule that is there now is from its permanent config: not ours, left alone', async () => {
  const { fw, grants, logged } = rig();
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  fw.restart([RULE('10.0.0.7')]);
  await flush();
  assert.deepEqual(grants.list(), []);
  assert.ok(logged(/rule present but not added by knockd; left alone/));
  assert.equal(fw.rules.get(`public|${RULE('10.0.0.7')}`), 0);
});

test('3. a close firewalld cannot do is kept as "closing", persisted, and retried until firewalld confirms', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'grants-'));
  try {
    const stateFile = join(dir, 'grants.json');
    const { fw, clock, grants, logged } = rig({ stateFile });
    await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
    fw.failures.push({ op: 'remove', err: unreachable() }, { op: 'remove', err: unreachable() });
    await grants.close('public', RULE('10.0.0.7'), who('10.0.0.7'));
    assert.deepEqual(
      grants.list().map((g) => g.state),
      ['closing'],
    );
    assert.equal(grants.closingCount, 1);
    assert.ok(logged(/could not remove rule .*kept as closing and retried/));
    await grants.settle();
    assert.match(readFileSync(stateFile, 'utf8'), /"state":"closing"/);
    // The closing grant outlives its expiry: the removal must be confirmed, not assumed.
    await clock.advance(1000);
    assert.equal(grants.closingCount, 1, 'second failure: still closing');
    await clock.advance(400_000);
    assert.deepEqual(grants.list(), []);
    assert.equal(fw.rules.size, 0);
    await grants.settle();
    assert.doesNotMatch(readFileSync(stateFile, 'utf8'), /10\.0\.0\.7/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('3. a "closing" grant in the state file is removed at the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'grants-'));
  try {
    const stateFile = join(dir, 'grants.json');
    const entry = {
      zone: 'public',
      rule: RULE('10.0.0.7'),
      src: '10.0.0.7',
      door: 'openSSH',
      timeout: 30,
      expiresAt: 1,
      state: 'closing',
      firewalld: '100/:1.5',
    };
    writeFileSync(stateFile, JSON.stringify({ version: 2, grants: [entry] }));
    const { fw, grants } = rig({ stateFile });
    fw.rules.set(`public|${RULE('10.0.0.7')}`, 30);
    assert.equal(await grants.restore(stateFile), 1);
    assert.equal(fw.rules.size, 0);
    assert.deepEqual(grants.list(), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('5. a timeout beyond what one Node timer holds does not expire early', async () => {
  const lines: string[] = [];
  const fw = new FakeFirewalld(new Clock());
  const grants = new Grants(fw, pino({}, { write: (s: string) => void lines.push(s) }));
  const days40 = 40 * 86_400;
  await grants.open('public', RULE('10.0.0.7'), days40, who('10.0.0.7'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(grants.list().length, 1, 'still held');
  assert.equal(fw.rules.get(`public|${RULE('10.0.0.7')}`), days40, 'firewalld got the real value');
  assert.ok(!lines.some((l) => l.includes('expired')));
  grants.dispose();
});

test('6. a damaged grants.json: moved aside, every valid entry still honoured, each bad entry named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'grants-'));
  try {
    const stateFile = join(dir, 'grants.json');
    const good = {
      zone: 'public',
      rule: RULE('10.0.0.7'),
      src: '10.0.0.7',
      door: 'openSSH',
      timeout: 300,
      expiresAt: 1_000_000 + 200_000,
      state: 'open',
      firewalld: '100/:1.5',
    };
    const evil = { ...good, rule: 'rule family="ipv4" source address="10.0.0.0/8" accept', src: '10.0.0.9' };
    writeFileSync(
      stateFile,
      `{"version":2,"grants":[\n${JSON.stringify(good)},\n${JSON.stringify(evil)},\n{"zone":"pub`,
    );
    const { fw, grants, lines } = rig({ stateFile });
    fw.rules.set(`public|${RULE('10.0.0.7')}`, 300);
    assert.equal(await grants.restore(stateFile), 1);
    assert.deepEqual(
      grants.list().map((g) => [g.src, g.state]),
      [['10.0.0.7', 'open']],
    );
    const errors = lines
      .filter((l) => l.level >= 50)
      .map((l) => l.msg)
      .join('\n');
    assert.match(errors, /grants\.json: not valid JSON/);
    assert.match(errors, /grants\.json: entry 2 refused: rule is not for the entry's own src address/);
    assert.match(errors, /moved aside to .*grants\.json\.corrupt-.*its 1 valid entry is honoured/);
    assert.ok(readdirSync(dir).some((f) => f.startsWith('grants.json.corrupt-')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('6. a grants.json that cannot be read is never overwritten', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'grants-'));
  try {
    const stateFile = join(dir, 'grants.json');
    mkdirSync(stateFile); // EISDIR on read; rename would move it, so make the rename fail too:
    writeFileSync(join(stateFile, 'x'), 'keep');
    const { grants, logged } = rig({ stateFile: join(stateFile) });
    await grants.restore(stateFile);
    assert.ok(logged(/cannot read it/));
    await grants.open('public', RULE('10.0.0.7'), 30, who('10.0.0.7'));
    await grants.settle();
    assert.ok(logged(/not writing it/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restart policy: a rule gone while we were down is put back only if firewalld restarted since', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'grants-'));
  try {
    const stateFile = join(dir, 'grants.json');
    const base = {
      zone: 'public',
      src: '10.0.0.7',
      door: 'openSSH',
      timeout: 300,
      expiresAt: 1_000_000 + 200_000,
      state: 'open',
    };
    const entries = [
      { ...base, rule: RULE('10.0.0.7'), firewalld: '100/:1.5' }, // same firewalld: removed by hand (or reloaded)
      { ...base, src: '10.0.0.8', rule: RULE('10.0.0.8'), firewalld: '42/:1.2' }, // another firewalld: lost to a restart
    ];
    writeFileSync(stateFile, JSON.stringify({ version: 2, grants: entries }));
    const { fw, grants, logged } = rig({ stateFile });
    await grants.restore(stateFile);
    assert.deepEqual([...fw.rules.keys()], [`public|${RULE('10.0.0.8')}`]);
    assert.equal(fw.rules.get(`public|${RULE('10.0.0.8')}`), 200, 'put back with its remaining time');
    assert.ok(logged(/10\.0\.0\.7: openSSH: firewalld: .* is no longer in zone public .*not put back/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('9. a bus reconnect checks every grant: still there is kept, lost to a firewalld restart is put back', async () => {
  const { fw, grants } = rig();
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  await grants.open('public', RULE('10.0.0.8'), 300, who('10.0.0.8'));
  fw.rules.clear();
  fw.id = '300/:1.20'; // firewalld restarted while we were disconnected
  fw.rules.set(`public|${RULE('10.0.0.7')}`, 300); // (as if it were there)
  fw.emit('reconnected');
  await flush();
  assert.deepEqual([...fw.rules.keys()].sort(), [`public|${RULE('10.0.0.7')}`, `public|${RULE('10.0.0.8')}`]);
  assert.deepEqual(
    grants.list().map((g) => g.state),
    ['open', 'open'],
  );
});

test('an open firewalld cannot take now is kept and retried; the state says so', async () => {
  const { fw, clock, grants } = rig();
  fw.failures.push({ op: 'add', err: unreachable() });
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  assert.deepEqual(
    grants.list().map((g) => g.state),
    ['opening'],
  );
  await clock.advance(1000);
  assert.deepEqual(
    grants.list().map((g) => g.state),
    ['open'],
  );
  assert.ok(fw.rules.has(`public|${RULE('10.0.0.7')}`));
});

test('shutdown with firewalld hung: stop() returns by its deadline', async () => {
  const { fw, clock, grants } = rig();
  fw.removeRichRule = () => new Promise<void>(() => undefined); // never answers
  await grants.open('public', RULE('10.0.0.7'), 300, who('10.0.0.7'));
  void grants.close('public', RULE('10.0.0.7'), who('10.0.0.7'));
  const stopped = grants.stop(5000);
  await clock.advance(5000);
  assert.equal(await stopped, false);
});
