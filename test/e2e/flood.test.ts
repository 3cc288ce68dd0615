/**
 * Issue 6, hostile input 2 (issue 5's flood target, as a behaviour): a
 * spoofed-source SYN flood at the first knock port, sent with hping3 from the
 * client namespace, neither starves a legitimate knocker nor exhausts memory.
 * The figures (rates, CPU per packet) are bench/flood.ts's job; this test
 * only asserts what must hold: every open and every close knock during the
 * flood works, the attempt table stays at its bound (evictions happen), and
 * both of our processes together stay under 150 MB resident (each one's
 * kernel-recorded peak, summed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import type { Lab } from '../lab/lab';
import { treeSample } from '../../bench/proc';
import { SLOW, DEFAULT_CONF, debianKnock, sleep, sshRule, startKnockd, withLab } from './helpers';

const RSS_LIMIT_MB = 150;
const MAX_ATTEMPTS = 20_000;

let lab!: Lab;
withLab({}, (l) => (lab = l));

test('a spoofed-source SYN flood (hping3 --rand-source) starves no legitimate knock and stays under 150 MB', async (t) => {
  const d = await startKnockd(lab, DEFAULT_CONF(), ['--max-attempts', String(MAX_ATTEMPTS)]);
  // On two or more cores the generator (and the kernel receive path it drives) gets core 0, as in the bench.
  const pin = availableParallelism() >= 2 ? ['taskset', '-c', '0'] : [];
  const flood = lab.spawnIn('client', [
    ...pin,
    'timeout',
    '-s',
    'INT',
    '120',
    'hping3',
    '--flood',
    '--rand-source',
    '-S',
    '-p',
    '3333',
    lab.serverAddr,
  ]);
  try {
    // Long enough for the attempt table to fill and evictions to start.
    await d.waitForLog(/attempt\(s\) evicted/, SLOW);
    for (let round = 1; round <= 3; round++) {
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      const rules = await lab.waitFor(
        async () => {
          const r = await lab.richRules();
          return r.length ? r : undefined;
        },
        SLOW,
        50,
      );
      assert.deepEqual(rules, [sshRule(lab.clientAddr)], `round ${round}: the open knock got through the flood`);
      await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
      await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 50);
      await sleep(300);
    }
    assert.ok(flood.exitCode === null, 'hping3 was still flooding at the end');
  } finally {
    flood.kill('SIGINT');
  }
  // Each process's peak RSS as the kernel recorded it (VmHWM), summed: never below the peak of the sum.
  const peak = treeSample(d.proc.pid!);
  const parts = peak.parts.map((p) => p.hwmMB.toFixed(1)).join(' + ');
  const log = await d.log();
  const openLines = log.split('\n').filter((l) => l.includes(`${lab.clientAddr}: openSSH: OPEN SESAME`));
  assert.equal(openLines.length, 3, 'three OPEN SESAME lines for the legitimate client');
  t.diagnostic(`peak RSS under the flood: ${peak.hwmMB} MB (daemon + capture: ${parts})`);
  assert.equal(peak.parts.length, 2, 'the daemon and its capture process were measured');
  assert.ok(peak.hwmMB < RSS_LIMIT_MB, `peak RSS of daemon + capture ${peak.hwmMB} MB (${parts}) < ${RSS_LIMIT_MB} MB`);
  assert.equal(await d.stop(), 0, 'SIGTERM after the flood shuts down cleanly');
});
