/**
 * Issue 18.4: a used one-time sequence never works twice, whatever the admin
 * does to the file while the daemon runs; the mark is found by content in the
 * file as it is, and the file is replaced atomically with its mode and owner.
 * Issue 20: the file's grammar is the config's `Sequence =` grammar.
 * Real files, the real functions the daemon calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  disableOneTimeSequence,
  firstOneTimeSequence,
  parseOneTimeLine,
  UsedSequences,
  type SkippedLine,
} from '../../src/config/onetime';
import { parseSequence } from '../../src/config/sequence';

function withFile(content: string, fn: (file: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onetime-'));
    const file = join(dir, 'seq');
    writeFileSync(file, content);
    try {
      await fn(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const ports = (s: string) => parseSequence(s).ports;

test(
  'a comment line prepended while the daemon runs: the mark lands on the used line, which never opens again',
  withFile('1111,2222,3333\n4444,5555,6666\n', async (file) => {
    const used = new UsedSequences();
    const first = await firstOneTimeSequence(file, [], used);
    assert.deepEqual(first?.sequence, ports('1111,2222,3333'));
    // The admin edits the file between the daemon's read and the knock.
    writeFileSync(file, `# rotated by admin\n${readFileSync(file, 'utf8')}`);
    assert.equal(await disableOneTimeSequence(file, first, used), true);
    assert.equal(readFileSync(file, 'utf8'), '# rotated by admin\n#111,2222,3333\n4444,5555,6666\n');
    const next = await firstOneTimeSequence(file, [], used);
    assert.deepEqual(next?.sequence, ports('4444,5555,6666'));
    assert.equal(next?.line, 3);
  }),
);

test(
  'a used sequence stays used in this run: un-commented, re-added, or its line removed before the mark',
  withFile('1111,2222\n3333,4444\n', async (file) => {
    const used = new UsedSequences();
    const first = (await firstOneTimeSequence(file, [], used))!;
    writeFileSync(file, '3333,4444\n'); // the admin removed the line before the mark was written
    assert.equal(await disableOneTimeSequence(file, first, used), false);
    writeFileSync(file, '1111, 2222:tcp\n3333,4444\n'); // ... and puts it back, spelled differently
    assert.deepEqual((await firstOneTimeSequence(file, [], used))?.sequence, ports('3333,4444'));
  }),
);

test(
  'the file is replaced atomically with its mode and owner; nothing else in it changes',
  withFile('  # keep me\r\n\n1111,2222\r\n3333\n', async (file) => {
    chmodSync(file, 0o640);
    chownSync(file, 65534, 0);
    const before = statSync(file);
    const used = new UsedSequences();
    const first = (await firstOneTimeSequence(file, [], used))!;
    assert.equal(first.line, 3);
    await disableOneTimeSequence(file, first, used);
    const after = statSync(file);
    assert.notEqual(after.ino, before.ino, 'a new file renamed over the old one');
    assert.equal(after.mode & 0o7777, 0o640);
    assert.equal(after.uid, 65534);
    assert.equal(after.gid, 0);
    assert.equal(readFileSync(file, 'utf8'), '  # keep me\r\n\n#111,2222\r\n3333\n');
  }),
);

test('issue 20: a line is read with the grammar of Sequence = (spaces around ":", any case)', () => {
  for (const text of ['7000 : udp,8000', '7000:UDP, 8000 :tcp', ' 7000\t,8000 ']) {
    const r = parseOneTimeLine(text);
    assert.ok(Array.isArray(r), `${text}: ${JSON.stringify(r)}`);
    assert.deepEqual(r, parseSequence(text.trim()).ports);
  }
  assert.equal(parseOneTimeLine('# 7000,8000'), undefined);
  assert.equal(parseOneTimeLine('   '), undefined);
});

test(
  'lines that are not sequences are reported with their line number and why, and skipped',
  withFile('7000:icmp\n70000,1\n\n7000 : udp,8000\n', async (file) => {
    const skipped: SkippedLine[] = [];
    const s = await firstOneTimeSequence(file, skipped, new UsedSequences());
    assert.deepEqual(s?.sequence, ports('7000:udp,8000'));
    assert.equal(s?.line, 4);
    assert.deepEqual(
      skipped.map((k) => k.line),
      [1, 2],
    );
    assert.match(skipped[0].why, /unknown protocol "icmp"/);
    assert.match(skipped[1].why, /out of range/);
  }),
);
