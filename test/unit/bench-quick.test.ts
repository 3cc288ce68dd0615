/** The matcher microbenchmark still runs (quick mode). Tests assert behaviour; numbers are for `npm run bench`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMatcherBench } from '../../bench/matcher';

test('matcher microbenchmark runs in quick mode and opens doors', () => {
  const r = runMatcherBench(true);
  assert.equal(r.frames, 200_000);
  assert.ok(r.opened > 0, 'the knocks in the mix open the door');
  assert.ok(r.ppsMedian > 0);
});
