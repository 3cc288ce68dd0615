import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RefreshGate, refreshIntervalMs } from '../../src/daemon/refresh-gate';

test('a held grant is refreshed at most once per interval; the interval is at most half the timeout', () => {
  let now = 0;
  const g = new RefreshGate(() => now, 2);
  assert.equal(g.admit('a', 5000), true);
  now = 4999;
  assert.equal(g.admit('a', 5000), false);
  now = 5000;
  assert.equal(g.admit('a', 5000), true);
  assert.equal(g.skipped, 1);
  g.acted('b');
  g.acted('c'); // bound 2: 'a' is forgotten, its next knock refreshes at once
  assert.equal(g.admit('a', 5000), true);
  assert.equal(refreshIntervalMs(5, 0), 5000);
  assert.equal(refreshIntervalMs(5, 60), 5000);
  assert.equal(refreshIntervalMs(5, 4), 2000);
  assert.equal(refreshIntervalMs(0, 60), 0);
});
