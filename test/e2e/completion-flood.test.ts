/**
 * Issue 18.7, daemon side: a sniffed sequence completed from many spoofed
 * sources. Each door admits at most --max-completions completions a second
 * (bursts of 10x) into the action path; the rest are refused, logged at most
 * once a second per door. The bound is reached and logged, the firewall holds
 * at most what the bound let through, and the real client's knock after the
 * flood opens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import { spoofCompletions } from '../../bench/spoof';
import { SLOW, DEFAULT_CONF, KNOCKD_BIN, debianKnock, sshRule, withDaemon, withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false, sshd: false }, (l) => (lab = l));

test('18.7 2 000 spoofed completions of one door: the bound is reached and logged, rules stay within it, the real client opens after', async () => {
  await withDaemon(
    lab,
    DEFAULT_CONF({ cmdTimeout: 600 }),
    async (d) => {
      const sent = await spoofCompletions(lab, { count: 2000, seconds: 4, ports: [3333, 4444, 5555] });
      assert.equal(sent, 6000);
      await d.waitForLog(/openSSH: completion refused: the door is at its bound of 2 completions a second/, SLOW);
      // Let the last completions and their firewalld calls land.
      await lab.waitFor(
        async () => {
          const st = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
          return /waiting for firewalld/.test(st.stdout) ? undefined : st.stdout;
        },
        20_000,
        250,
      );
      const spoofed = (await lab.richRules()).filter((r) => r.includes('source address="10.1'));
      // Burst 20, then 2 a second over the flood and its drain: far below the 2 000 completions.
      assert.ok(spoofed.length >= 20 && spoofed.length <= 80, `${spoofed.length} rules from spoofed sources`);
      const st = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
      assert.match(st.stdout, /completions per door \(--max-completions\)\s+2\/s, burst 20\s+\d+ refused/);
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(lab.clientAddr)), SLOW, 50);
    },
    { args: ['--max-completions', '2'] },
  );
});
