/**
 * The matcher microbenchmark still runs (quick mode) and does the work it
 * claims to measure. Tests assert behaviour; the speed is for `npm run bench`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMatcherBench } from '../../bench/matcher';

test('matcher microbenchmark (quick mode): every source whose 3 knocks are among the frames opens the door once', () => {
  const r = runMatcherBench(true);
  assert.equal(r.frames, 200_000);
  assert.equal(r.rounds, 1);
  // Each source sends 30 frames (3 knocks, each followed by 9 packets of other sources to other ports),
  // its third knock being its 21st frame: sources 0..k with 30k + 21 <= 200 000 complete the sequence.
  const complete = Math.floor((200_000 - 21) / 30) + 1;
  assert.equal(r.opened, complete);
  // One round: the median, min and max are the same measurement.
  assert.equal(r.ppsMin, r.ppsMedian);
  assert.equal(r.ppsMax, r.ppsMedian);
  assert.ok(Number.isFinite(r.ppsMedian));
});
