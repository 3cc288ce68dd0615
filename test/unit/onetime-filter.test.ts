/**
 * A One_Time_Sequences door moving on to its next sequence keeps the capture
 * filter as it was: the filter is locked in each capture process, so a change
 * means a new capture process and knocks lost while it starts. The filter
 * takes the ports of every unused line of the file; only a line the admin adds
 * with new ports changes it. Real files, the real functions the daemon calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildFilter } from '../../src/capture/filter';
import { parseConfigText } from '../../src/config/parse';

import { toRuntimeDoors } from '../../src/daemon/doors';
import { OneTimeDoors } from '../../src/daemon/onetime-doors';

test('moving to the next one-time sequence leaves the capture filter as it was; a new line with new ports changes it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onetime-filter-'));
  try {
    const file = join(dir, 'seq');
    writeFileSync(file, '# used before\n1111,2222,3333\n4444,5555:udp,6666\n7777,1111,2222\n');
    const conf = parseConfigText(`[oneTime]\n one_time_sequences = ${file}\n start_command = true\n`, 'knockd.conf');
    assert.deepEqual(conf.errors, []);
    const ot = new OneTimeDoors(pino({ level: 'silent' }));
    const prepared = await ot.prepare(toRuntimeDoors(conf.config!.doors), 'knockd.conf');
    ot.commit(prepared);
    const first = prepared.doors[0]!;
    const f1 = buildFilter([first], []);
    for (const p of ['1111', '2222', '3333', '4444', '6666', '7777']) assert.match(f1, new RegExp(`\\b${p}\\b`));
    assert.match(f1, /udp dst port 5555/);

    const second = (await ot.next(first))!;
    assert.deepEqual(
      second.sequence.map((k) => k.port),
      [4444, 5555, 6666],
    );
    assert.equal(buildFilter([second], []), f1, 'the filter did not change');

    const third = (await ot.next(second))!;
    assert.equal(buildFilter([third], []), f1, 'the filter did not change at the last line either');

    appendFileSync(file, '8888,9999,1234\n');
    const fourth = (await ot.next(third))!;
    assert.deepEqual(
      fourth.sequence.map((k) => k.port),
      [8888, 9999, 1234],
    );
    assert.notEqual(buildFilter([fourth], []), f1, 'a line with new ports widens the filter');
    assert.match(buildFilter([fourth], []), /\b8888\b/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
