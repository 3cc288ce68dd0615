/**
 * #18.12 sibling: the pid file is never written through a symlink or a hard
 * link planted at its path; a stale one (a crash) is replaced, as knockd 0.8
 * did; at exit it is removed only while it holds our pid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removePidFile, writePidFile } from '../../src/state/pidfile';

function inDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knockd-pid-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'a symlink at the pid file path is replaced, its target never written',
  inDir(async (dir) => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'root:x:0:0\n');
    const pid = join(dir, 'knockd.pid');
    symlinkSync(victim, pid);
    await writePidFile(pid, 4242);
    assert.equal(readFileSync(victim, 'utf8'), 'root:x:0:0\n');
    assert.ok(lstatSync(pid).isFile());
    assert.equal(readFileSync(pid, 'utf8'), '4242\n');
    assert.equal(lstatSync(pid).mode & 0o777, 0o644);
  }),
);

test(
  'a hard link at the pid file path: its other name keeps its content',
  inDir(async (dir) => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'secret\n');
    const pid = join(dir, 'knockd.pid');
    linkSync(victim, pid);
    await writePidFile(pid, 4242);
    assert.equal(readFileSync(victim, 'utf8'), 'secret\n');
    assert.equal(readFileSync(pid, 'utf8'), '4242\n');
  }),
);

test(
  "a stale pid file is replaced (knockd 0.8's behaviour); at exit only our own is removed",
  inDir(async (dir) => {
    const pid = join(dir, 'knockd.pid');
    writeFileSync(pid, '999999\n');
    await writePidFile(pid, 4242);
    assert.equal(readFileSync(pid, 'utf8'), '4242\n');
    // Another daemon wrote it since: not ours to remove.
    writeFileSync(pid, '5151\n');
    assert.equal(await removePidFile(pid, 4242), false);
    assert.ok(existsSync(pid));
    writeFileSync(pid, '4242\n');
    assert.equal(await removePidFile(pid, 4242), true);
    assert.equal(existsSync(pid), false);
    // A symlink to a file holding our pid is not followed: left alone.
    writeFileSync(join(dir, 'other'), '4242\n');
    symlinkSync(join(dir, 'other'), pid);
    assert.equal(await removePidFile(pid, 4242), false);
    assert.ok(existsSync(join(dir, 'other')));
  }),
);
