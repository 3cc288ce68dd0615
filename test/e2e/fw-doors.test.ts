/**
 * Issue 17.2/17.3/17.4 (and 18.6), end to end, on whichever firewalld the lab
 * runs (KNLAB_FIREWALLD=bullseye|bookworm|trixie|sid; the matrix runs this
 * file on each): open, close, expiry on time, refresh past the old end,
 * firewalld restart, `firewall-cmd --reload` with a grant open (firewalld
 * keeps working), hand removal in several spellings never undone, and what
 * closes the door after a SIGKILL of the daemon, per version (versions.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { versionPolicy, type VersionPolicy } from '../../src/firewalld/versions';
import {
  DEFAULT_CONF,
  KNOCKD_BIN,
  clearRichRules,
  debianKnock,
  sleep,
  sshRule,
  startKnockd,
  withDaemon,
  withLab,
} from './helpers';

let lab!: Lab;
withLab({ ipv6: false, extraClientAddrs: 1 }, (l) => (lab = l));

const OPEN = [3333, 4444, 5555];
const CLOSE = [6666, 7777, 8888];

let policy: VersionPolicy | undefined;
async function mechanism(): Promise<VersionPolicy> {
  policy ??= versionPolicy((await lab.firewallCmd('--version')).trim());
  return policy;
}

async function status(): Promise<string> {
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const has = async (rule: string): Promise<boolean> => (await lab.richRules()).includes(rule);

/** What an admin does after a --reload in the lab: the interface back in public, no ssh service. */
async function zoneSetup(): Promise<void> {
  await lab.firewallCmd('--zone=public', `--change-interface=${lab.serverIf}`);
  await lab.firewallCmd('--zone=public', '--remove-service=ssh');
}

test('open and close', async () => {
  const rule = sshRule(lab.clientAddr);
  await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 120 }), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(() => has(rule), 3000, 25);
    assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-/);
    const p = await mechanism();
    await d.waitForLog(
      p.expiry === 'firewalld' ? /grants are timed rules/ : /grants are untimed rules whose expiry knockd owns/,
      3000,
    );
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await lab.waitFor(async () => !(await has(rule)), 3000, 25);
    assert.equal(await lab.sshBanner(), null);
  });
});

test('expiry on time', async () => {
  const rule = sshRule(lab.clientAddr);
  await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 3 }), async () => {
    const knocked = Date.now();
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(() => has(rule), 3000, 25);
    const seen = Date.now();
    await lab.waitFor(async () => !(await has(rule)), 8000, 50);
    const fromKnock = (Date.now() - knocked) / 1000;
    const fromSeen = (Date.now() - seen) / 1000;
    process.stdout.write(
      `# firewalld ${(await mechanism()).version}: a 3 s grant was gone ${fromSeen.toFixed(2)} s after it was seen (${fromKnock.toFixed(2)} s after the knock began)\n`,
    );
    assert.ok(fromKnock >= 3, `gone ${fromKnock} s after the knock began: early`);
    assert.ok(fromSeen < 5, `gone ${fromSeen} s after it was seen: late`);
    await sleep(300);
    assert.match(await status(), /grants held \(0\)/);
  });
});

test('refresh (re-knock while open): held past the old end, the stale signal ignored, the close knock removes it', async () => {
  const rule = sshRule(lab.clientAddr);
  await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 12 }), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(() => has(rule), 3000, 25);
    const t0 = Date.now();
    await sleep(5000);
    await debianKnock(lab, lab.serverAddr, OPEN);
    await d.waitForLog(/openSSH: firewalld: refreshed in zone public/, 3000);
    const refreshed = Date.now() - t0;
    assert.ok(refreshed < 10_000, `the refresh came ${refreshed} ms after the open: too late to test anything`);
    // Past the first end (12 s, + firewalld's lateness; where 2.5 sends its stale RichRuleRemoved), before the new one.
    await sleep(13_500 - refreshed);
    const present = await has(rule);
    const st = await status();
    const log = await d.log();
    process.stdout.write(`# refreshed ${refreshed} ms after the open; checked ${Date.now() - t0} ms after it\n`);
    assert.ok(present, `the rule stays\n${log}`);
    assert.match(st, /grants held \(1\)/, `${st}\n${log}`);
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await lab.waitFor(async () => !(await has(rule)), 3000, 25);
    const after = await d.log();
    assert.doesNotMatch(after, /removed outside knockd|not added by knockd|nothing to close|rule expired/);
    assert.match(after, /closeSSH: firewalld: removed from zone public/);
  });
});

test('firewalld restart: the grant is back', async () => {
  const rule = sshRule(lab.clientAddr);
  await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 120 }), async () => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(() => has(rule), 3000, 25);
    await lab.stopFirewalld();
    await lab.startFirewalld();
    await lab.waitFor(() => has(rule), 5000, 50);
    assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-/);
  });
});

test('firewall-cmd --reload with a grant open: firewalld keeps working, other access is as before, the grant is back', async () => {
  const rule = sshRule(lab.clientAddr);
  const other = lab.extraClientAddrs[0];
  const admin = sshRule(other); // the admin's own, permanent: not knocked
  await lab.firewallCmd('--permanent', '--zone=public', `--add-rich-rule=${admin}`);
  await lab.firewallCmd('--zone=public', `--add-rich-rule=${admin}`);
  try {
    await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 120 }), async (d) => {
      await debianKnock(lab, lab.serverAddr, OPEN);
      await lab.waitFor(() => has(rule), 3000, 25);
      assert.match((await lab.sshBanner({ source: other })) ?? '', /^SSH-2\.0-/, 'before: the admin rule works');
      const from = (await d.log()).length;
      const r = await lab.execIn('server', ['firewall-cmd', '--reload']);
      assert.equal(r.code, 0, `--reload failed: ${r.stderr}${r.stdout}`);
      assert.equal((await lab.firewallCmd('--state')).trim(), 'running');
      await zoneSetup(); // zone calls succeed
      await d.waitForLog(/firewalld reloaded: restoring 1 rule/, 5000, from);
      await lab.waitFor(() => has(rule), 5000, 50);
      assert.match((await lab.sshBanner({ source: other })) ?? '', /^SSH-2\.0-/, 'after: the admin rule still works');
      assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-/, 'after: the grant is back');
      assert.doesNotMatch(await status(), /BROKEN/);
    });
  } finally {
    await lab.firewallCmd('--permanent', '--zone=public', `--remove-rich-rule=${admin}`);
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${admin}`).catch(() => undefined);
  }
});

test('a hand removal in any spelling firewalld accepts ends the grant and is never undone by --reload', async () => {
  const ip = lab.clientAddr;
  const spellings: string[][] = [
    ['--zone=public', `--remove-rich-rule=${sshRule(ip)}`],
    [`--remove-rich-rule=rule family=ipv4 source address=${ip} service name=ssh accept`], // no --zone, unquoted
    ['--zone=public', `--remove-rich-rule=rule  family="ipv4"   source address='${ip}' service name="ssh"  accept`],
  ];
  for (const how of spellings) {
    await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 120 }), async (d) => {
      await debianKnock(lab, lab.serverAddr, OPEN);
      await lab.waitFor(() => has(sshRule(ip)), 3000, 25);
      await lab.firewallCmd(...how);
      await d.waitForLog(/rule removed outside knockd .*grant ended, it will not be put back/, 3000);
      await lab.firewallCmd('--reload');
      await zoneSetup();
      await sleep(1500);
      assert.deepEqual(await lab.richRules(), [], `undone after ${how.join(' ')}`);
      assert.match(await status(), /grants held \(0\)/);
    });
  }
});

test('SIGKILL of the daemon: what closes the door, and when, on this version', async () => {
  const rule = sshRule(lab.clientAddr);
  const stateDir = join(lab.tmpDir, 'sigkill');
  const p = await mechanism();
  const d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 3 }), [], { stateDir });
  await debianKnock(lab, lab.serverAddr, OPEN);
  await lab.waitFor(() => has(rule), 3000, 25);
  const opened = Date.now();
  await d.stop('SIGKILL');
  try {
    if (p.expiry === 'firewalld') {
      await lab.waitFor(async () => !(await has(rule)), 6000, 50);
      const s = (Date.now() - opened) / 1000;
      process.stdout.write(
        `# firewalld ${p.version}: after SIGKILL firewalld's timer closed the door ${s.toFixed(2)} s after the open\n`,
      );
      assert.ok(s > 2 && s < 5, `${s} s`);
      return;
    }
    // knockd owns the expiry: the door stays open while it is down, and closes when it is back.
    await sleep(5000);
    assert.ok(await has(rule), 'untimed rule: still there while knockd is down');
    const d2 = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 3 }), [], { stateDir });
    const started = Date.now();
    try {
      await lab.waitFor(async () => !(await has(rule)), 5000, 50);
      process.stdout.write(
        `# firewalld ${p.version}: after SIGKILL the door stayed open until knockd started again; removed ${((Date.now() - started) / 1000).toFixed(2)} s after that start\n`,
      );
      await d2.waitForLog(/outlived its end by \d+s \(knockd was not running then\); removing it now/, 3000);
    } finally {
      await d2.stop();
    }
  } finally {
    await clearRichRules(lab);
  }
});
