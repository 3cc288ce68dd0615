/**
 * Issue 17.6 (and 17.1), end to end on whichever firewalld the lab runs: an
 * admin's own timed rule plus `firewall-cmd --reload`. On 2.3.3+/2.4.1+/2.5.x
 * that breaks firewalld itself (upstream #1597): the daemon must say so (log,
 * --status: firewalld's state, "systemctl restart firewalld"), not blame
 * knockd.conf for the next knock, and put its grants back once firewalld is
 * restarted. On the old timer code the reload works and nothing is reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import { versionPolicy } from '../../src/firewalld/versions';
import { DEFAULT_CONF, KNOCKD_BIN, debianKnock, sshRule, withDaemon, withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false, extraClientAddrs: 1 }, (l) => (lab = l));

const OPEN = [3333, 4444, 5555];

async function status(): Promise<string> {
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

test("an admin's timed rule and --reload: a broken firewalld is reported as firewalld's, the grant is back after its restart", async () => {
  const p = versionPolicy((await lab.firewallCmd('--version')).trim());
  const rule = sshRule(lab.clientAddr);
  const admins = sshRule(lab.extraClientAddrs[0]);
  await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 300 }), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(async () => (await lab.richRules()).includes(rule), 3000, 25);
    await lab.firewallCmd('--zone=public', `--add-rich-rule=${admins}`, '--timeout=600');
    const reload = await lab.execIn('server', ['firewall-cmd', '--reload']);
    if (p.timers === 'old') {
      assert.equal(reload.code, 0, reload.stderr);
      await lab.firewallCmd('--zone=public', `--change-interface=${lab.serverIf}`);
      await lab.waitFor(async () => (await lab.richRules()).includes(rule), 5000, 50);
      assert.doesNotMatch(await status(), /BROKEN|firewalld is broken/);
      return;
    }
    // The new timer code: the reload fails and firewalld is left broken.
    process.stdout.write(
      `# firewalld ${p.version}: --reload with a timed rule: exit ${reload.code}: ${reload.stderr.trim()}\n`,
    );
    const from = (await d.log()).length;
    await d.waitForLog(/firewalld itself is broken: .*systemctl restart firewalld/, 15_000, from);
    const st = await status();
    process.stdout.write(`# ${/firewalld is broken \(.*?\):/.exec(st)?.[0] ?? '(not reported)'}\n`);
    assert.match(
      st,
      /firewalld is broken \(.*\): this is firewalld's own state, not knockd\.conf: run "systemctl restart firewalld"/,
    );
    // A knock now is not blamed on knockd.conf.
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${rule}`).catch(() => undefined);
    await debianKnock(lab, lab.extraClientAddrs[0], OPEN).catch(() => undefined);
    assert.doesNotMatch((await d.log()).slice(from), /check firewalld_zone\/firewalld_service in knockd\.conf/);
    // systemctl restart firewalld: every grant back, and the report gone.
    await lab.stopFirewalld();
    await lab.startFirewalld();
    await lab.waitFor(async () => (await lab.richRules()).includes(rule), 10_000, 100);
    await lab.waitFor(async () => !/firewalld is broken/.test(await status()), 15_000, 500);
  });
});
