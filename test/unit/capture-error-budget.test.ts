/**
 * #18.10 sibling: the capture process's `error` messages (an interface lost)
 * are logged by the daemon within a budget of its own
 * (CAPTURE_ERROR_LOG_PER_SECOND); the rest are counted and the count logged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { LogBudget } from '../../src/capture/log-budget';
import { CAPTURE_ERROR_LOG_PER_SECOND, CaptureSupervisor } from '../../src/capture/supervisor';

/** The supervisor's state a running capture process would have given it (no process is started here). */
interface Inside {
  child: object;
  childIfaces: string[];
  listeningOn: Map<string, string>;
  onMessage(child: object, raw: unknown): void;
}

test('a capture process sending 10 000 interface errors in 0.4 s makes at most the budget of lines, and a count', () => {
  const lines: string[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push((JSON.parse(s) as { msg: string }).msg) },
  );
  let now = 5_000_000;
  const sup = new CaptureSupervisor(log, () => now);
  const inside = sup as unknown as Inside;
  const child = {};
  inside.child = child;
  inside.childIfaces = ['eth0', 'eth1'];
  for (let i = 0; i < 10_000; i++) {
    // As if a `listening` for eth0 came in between (each error ends a listening interface).
    inside.listeningOn.set('eth0', 'ETHERNET');
    inside.listeningOn.set('eth1', 'ETHERNET');
    inside.onMessage(child, { t: 'error', iface: 'eth0', message: `eth0: gone ${i}` });
    now += 0.04;
  }
  const errors = lines.filter((l) => /^eth0: gone/.test(l));
  assert.equal(errors.length, CAPTURE_ERROR_LOG_PER_SECOND);
  now += 1000;
  inside.listeningOn.set('eth0', 'ETHERNET');
  inside.onMessage(child, { t: 'error', iface: 'eth0', message: 'eth0: gone again' });
  const count = lines.filter((l) => /interface-error line\(s\) from the capture process suppressed/.test(l));
  assert.equal(count.length, 1);
  assert.match(count[0], new RegExp(`^${10_000 - CAPTURE_ERROR_LOG_PER_SECOND} `));
  assert.equal(sup.errorLines.suppressedTotal, 10_000 - CAPTURE_ERROR_LOG_PER_SECOND);
  assert.ok(
    lines.includes('eth0: gone again; the other interfaces capture meanwhile, and capture restarts when it is back'),
  );
});

test('LogBudget: the count is reported one second after the first suppressed line even if nothing else comes', () => {
  let now = 1000;
  const reports: number[] = [];
  let pending: (() => void) | undefined;
  const b = new LogBudget(
    2,
    (n) => reports.push(n),
    () => now,
    (fn) => (pending = fn),
  );
  assert.deepEqual([b.admit(), b.admit(), b.admit(), b.admit()], [true, true, false, false]);
  assert.deepEqual(reports, []);
  now += 1000;
  pending!();
  assert.deepEqual(reports, [2]);
  assert.equal(b.admit(), true);
});
