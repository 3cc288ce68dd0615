/**
 * Issue 18.11: one daemon per state directory, also when several start
 * together on a stale lock, and a live holder recognised by its identity
 * (boot, pid, start time), not by "knockd" in a command line.
 *
 * The race runs real processes (test/support/lock-taker.ts): each takes the
 * lock and stays alive; exactly one of them may win each trial. The count of
 * winners is what is asserted, never a time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { lockStateDir, StateDirBusy } from '../../src/state/lock';
import { bootId, currentOwner, formatOwner, isLiveOwner, parseOwner, startTime } from '../../src/state/owner';

const TAKER = join(__dirname, '..', 'support', 'lock-taker.js');

const freshDir = (): string => mkdtempSync(join(tmpdir(), 'knockd-lock-'));

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync('true').pid;

/** A stale lock in both layouts: a numbered one naming a dead process, and an old-style pid file. */
async function plantStale(dir: string): Promise<void> {
  const pid = deadPid();
  writeFileSync(join(dir, 'knockd.lock.1'), formatOwner({ pid, start: '12345', boot: await bootId() }));
  writeFileSync(join(dir, 'knockd.lock'), `${pid}\n`);
}

/** Start `n` takers at once on `dir`; resolves with their first lines, then lets them all exit. */
async function race(dir: string, n: number, maxPauseMs: number): Promise<string[]> {
  const kids: ChildProcess[] = [];
  const lines = await Promise.all(
    Array.from({ length: n }, () => {
      const kid = spawn(process.execPath, [TAKER, dir, String(maxPauseMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
      kids.push(kid);
      return new Promise<string>((resolve) => {
        const rl = createInterface({ input: kid.stdout });
        rl.once('line', resolve);
        kid.once('exit', () => resolve('exited'));
      });
    }),
  );
  await Promise.all(
    kids.map(
      (k) =>
        new Promise<void>((resolve) => {
          if (k.exitCode !== null) return resolve();
          k.once('exit', () => resolve());
          k.stdin!.end();
        }),
    ),
  );
  return lines;
}

async function trials(count: number, takers: number, maxPauseMs: number): Promise<void> {
  const bad: string[] = [];
  for (let t = 0; t < count; t++) {
    const dir = freshDir();
    try {
      await plantStale(dir);
      const lines = await race(dir, takers, maxPauseMs);
      const won = lines.filter((l) => l === 'won').length;
      const other = lines.filter((l) => l !== 'won' && !l.startsWith('busy: '));
      if (won !== 1 || other.length) bad.push(`trial ${t + 1}: ${won} winners (${lines.join(' | ')})`);
      if (won === 1) {
        const locks = readdirSync(dir).filter((f) => f.startsWith('knockd.lock'));
        if (locks.length !== 1) bad.push(`trial ${t + 1}: lock files left: ${locks.join(' ')}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  assert.deepEqual(bad, [], `${bad.length} of ${count} trials did not have exactly one winner`);
}

test('takers starting together on a stale lock: exactly one wins (20 trials of 4)', async () => {
  await trials(20, 4, 0);
});

test('takers with the take-over slowed at each step: exactly one wins (10 trials of 4)', async () => {
  await trials(10, 4, 30);
});

test('a live holder is recognised by boot, pid and start time', async () => {
  const dir = freshDir();
  try {
    const lock = await lockStateDir(dir);
    const other = { pid: deadPid(), start: '1', boot: await bootId() };
    await assert.rejects(lockStateDir(dir, { owner: other }), (e: Error) => {
      assert.ok(e instanceof StateDirBusy);
      assert.match(e.message, new RegExp(`in use by another knockd \\(pid ${process.pid}\\).*--state-dir`));
      return true;
    });
    await lock.release();
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('knockd.lock')),
      [],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a recycled pid (same pid, other start time) or another boot is not the holder', async () => {
  const me = await currentOwner();
  assert.equal(await isLiveOwner(me), true);
  assert.equal(await isLiveOwner({ ...me, start: String(BigInt(me.start) + 1n) }), false);
  assert.equal(await isLiveOwner({ ...me, boot: '00000000-0000-0000-0000-000000000000' }), false);
  assert.equal(await isLiveOwner({ ...me, pid: deadPid() }), false);
  const dir = freshDir();
  try {
    writeFileSync(join(dir, 'knockd.lock.7'), formatOwner({ ...me, start: '1' }));
    const lock = await lockStateDir(dir);
    assert.equal(lock.file, join(dir, 'knockd.lock.8'));
    assert.deepEqual(parseOwner(readFileSync(lock.file, 'utf8')), me);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('knockd.lock')),
      ['knockd.lock.8'],
    );
    await lock.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an old-style lock naming a live process with "knockd" in its command line, not a knockd: taken over', async () => {
  // Like `vi /etc/knockd.conf` holding a recycled pid.
  const impostor = spawn('sh', ['-c', 'sleep 60', 'vi', '/etc/knockd.conf'], { stdio: 'ignore' });
  const dir = freshDir();
  try {
    assert.match(readFileSync(`/proc/${impostor.pid}/cmdline`, 'utf8'), /knockd/);
    writeFileSync(join(dir, 'knockd.lock'), `${impostor.pid}\n`);
    const lock = await lockStateDir(dir);
    await lock.release();
  } finally {
    impostor.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged lock file is stale; start time parses past a command name with ") " in it', async () => {
  assert.equal(parseOwner('123\n'), undefined);
  assert.equal(parseOwner('123 45 x\nmore'), undefined);
  const dir = freshDir();
  try {
    writeFileSync(join(dir, 'knockd.lock.1'), 'garbage');
    const lock = await lockStateDir(dir);
    assert.equal(lock.file, join(dir, 'knockd.lock.2'));
    await lock.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const odd = spawn(process.execPath, ['-e', 'process.title = "a) b c"; setTimeout(() => {}, 60000)'], {
    stdio: 'ignore',
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const viaStat = await startTime(odd.pid!);
    assert.match(viaStat ?? '', /^\d+$/);
  } finally {
    odd.kill();
  }
});
