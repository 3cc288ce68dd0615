/**
 * Issue 18.12: the state directory is trusted with root's work, so it must
 * be root's (or the daemon uid's) alone; state files are never read or
 * written through a symlink; a persisted entry is taken only if a current
 * door could have made it (the EntryOrigin hook the daemon passes in).
 * Runs as root (chown), like the rest of the suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStateDir, dirProblem, StateDirUnsafe } from '../../src/state/dir-trust';
import { lockStateDir } from '../../src/state/lock';
import { formatState, readStateFile, writeAtomically } from '../../src/state/statefile';
import { withOrigin } from '../../src/state/origin';

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knockd-trust-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const unsafe = (re: RegExp) => (e: Error) => {
  assert.ok(e instanceof StateDirUnsafe, String(e));
  assert.match(e.message, re);
  return true;
};

test('dirProblem: owner and write bits', () => {
  assert.equal(dirProblem({ uid: 0, mode: 0o40700 }, 0, true), undefined);
  assert.equal(dirProblem({ uid: 0, mode: 0o40755 }, 0, true), undefined);
  assert.match(dirProblem({ uid: 1000, mode: 0o40700 }, 0, true)!, /owned by uid 1000, not by root$/);
  assert.equal(dirProblem({ uid: 1000, mode: 0o40700 }, 1000, true), undefined);
  assert.match(dirProblem({ uid: 0, mode: 0o40770 }, 0, true)!, /group-writable \(mode 0770\)/);
  assert.match(dirProblem({ uid: 0, mode: 0o41777 }, 0, true)!, /world-writable \(mode 01777\)/);
  // Above the state dir, a sticky world-writable dir (/tmp) is fine; a plain one is not.
  assert.equal(dirProblem({ uid: 0, mode: 0o41777 }, 0, false), undefined);
  assert.match(dirProblem({ uid: 0, mode: 0o40777 }, 0, false)!, /world-writable \(mode 0777\) and not sticky/);
});

test(
  'a world- or group-writable state dir is refused, naming the dir and the fix',
  withDir(async (dir) => {
    const state = join(dir, 'state');
    mkdirSync(state, { mode: 0o700 });
    await checkStateDir(state);
    chmodSync(state, 0o777);
    await assert.rejects(
      lockStateDir(state),
      unsafe(new RegExp(`state directory ${state}: it is world-writable \\(mode 0777\\).*chmod 0700 ${state}`)),
    );
    chmodSync(state, 0o770);
    await assert.rejects(checkStateDir(state), unsafe(/group-writable/));
    assert.deepEqual(readdirSync(state), [], 'nothing written into a refused dir');
  }),
);

test(
  'a state dir owned by another user is refused; so is one under a world-writable, non-sticky dir',
  withDir(async (dir) => {
    const state = join(dir, 'state');
    mkdirSync(state, { mode: 0o700 });
    chownSync(state, 65534, 65534);
    await assert.rejects(
      checkStateDir(state),
      unsafe(new RegExp(`owned by uid 65534, not by root.*chown root:root ${state} && chmod 0700 ${state}`)),
    );
    const open = join(dir, 'open');
    mkdirSync(join(open, 'state'), { recursive: true, mode: 0o700 });
    chmodSync(open, 0o777);
    await assert.rejects(
      checkStateDir(join(open, 'state')),
      unsafe(new RegExp(`${open} is world-writable.*not sticky`)),
    );
    chmodSync(open, 0o1777);
    await checkStateDir(join(open, 'state'));
  }),
);

test(
  'state files: a planted symlink is neither followed for reading nor written through',
  withDir(async (dir) => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const file = join(dir, 'grants.json');
    symlinkSync(victim, file);
    const read = await readStateFile(file, 'grants', [2], (r) => r);
    assert.match(read.problems.join('\n'), /is a symbolic link; not read/);
    assert.ok(read.movedTo, 'the link is moved aside');
    assert.ok(lstatSync(read.movedTo).isSymbolicLink());
    // The temp file name a writer uses, planted as a link to the victim: replaced, never written through.
    symlinkSync(victim, `${file}.${process.pid}.tmp`);
    await writeAtomically(file, formatState({ version: 2, key: 'grants', entries: [] }));
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
    assert.ok(lstatSync(file).isFile());
  }),
);

test(
  'withOrigin: an entry no current door could have made is refused and reported',
  withDir(async (dir) => {
    const file = join(dir, 'commands.json');
    writeFileSync(
      file,
      formatState({
        version: 2,
        key: 'stops',
        entries: [
          { door: 'ssh', cmd: 'close ssh for 192.0.2.1' },
          { door: 'ssh', cmd: 'rm -rf /' },
          { door: 'gone', cmd: 'x' },
        ],
      }),
    );
    type E = { door: string; cmd: string };
    const shape = (r: unknown): E | string => {
      const o = r as E;
      return typeof o.door === 'string' && typeof o.cmd === 'string' ? o : 'bad shape';
    };
    const origin = (e: E): string | undefined =>
      e.door !== 'ssh'
        ? `no door ${e.door}`
        : e.cmd.startsWith('close ssh for ')
          ? undefined
          : "not ssh's Stop_Command";
    const read = await readStateFile(file, 'stops', [2], withOrigin(shape, origin));
    assert.deepEqual(read.entries, [{ door: 'ssh', cmd: 'close ssh for 192.0.2.1' }]);
    assert.equal(read.problems.length, 2);
    assert.match(
      read.problems[0],
      /entry 2 refused: no door of the current configuration could have made it \(not ssh's/,
    );
    assert.match(read.problems[1], /entry 3 refused: .*\(no door gone\)/);
    assert.ok(read.movedTo);
  }),
);
