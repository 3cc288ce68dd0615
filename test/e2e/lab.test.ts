/**
 * Self-test of the network-namespace lab (test/lab/lab.ts).
 *
 * Proves that the test bed the e2e tests rely on is real and isolated:
 * firewalld runs (runtime only) on a private bus inside the server namespace,
 * blocks ssh from the client until a rich rule allows it (IPv4 and IPv6),
 * rich-rule timeouts expire, firewalld can be restarted, two labs can run at
 * once without interfering, and stop() leaves nothing behind.
 *
 * Must run as root; on an unsuitable machine the tests FAIL (requireRoot()
 * throws), they never skip.
 *
 *   npx tsc -p tsconfig.json && node --test dist/test/e2e/lab.test.js
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { test } from 'node:test';

import { cleanupStale, requireRoot, startLab, type Lab } from '../lab/lab';

const SSH_BANNER = /^SSH-2\.0-OpenSSH/;

/** Names listed by `ip netns list`. */
function netnsNames(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `ip netns list failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** Processes whose command line mentions `needle` (our tmpDir is in every daemon's argv). */
function processesMentioning(needle: string): string[] {
  const r = spawnSync('pgrep', ['-a', '-f', '--', needle], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

function ipv4Rule(source: string): string {
  return `rule family="ipv4" source address="${source}" service name="ssh" accept`;
}

function ipv6Rule(source: string): string {
  return `rule family="ipv6" source address="${source}" service name="ssh" accept`;
}

/** Everything the lab created is gone. */
function assertNothingLeft(lab: Lab): void {
  const names = netnsNames();
  assert.ok(!names.includes(lab.serverNs), `server namespace ${lab.serverNs} still exists`);
  assert.ok(!names.includes(lab.clientNs), `client namespace ${lab.clientNs} still exists`);
  assert.ok(!fs.existsSync(lab.tmpDir), `tmpDir ${lab.tmpDir} still exists`);
  assert.deepEqual(processesMentioning(lab.tmpDir), [], 'processes of the lab survived stop()');
}

/** The lab's basic invariants: names, addressing, routes, host untouched. */
async function assertTopology(lab: Lab): Promise<void> {
  for (const ifname of [lab.serverIf, lab.clientIf])
    assert.ok(ifname.length <= 15, `interface name too long: ${ifname}`);
  const names = netnsNames();
  assert.ok(names.includes(lab.serverNs) && names.includes(lab.clientNs), 'namespaces are listed');
  assert.match(lab.serverAddr, /^10\.200\.\d{1,3}\.1$/);
  assert.match(lab.busAddress, /^unix:path=\//);
  assert.equal(lab.env.DBUS_SYSTEM_BUS_ADDRESS, lab.busAddress);

  // No default routes anywhere: traffic can only go over the veth or lo.
  for (const ns of ['server', 'client'] as const) {
    for (const fam of ['-4', '-6']) {
      const r = await lab.execIn(ns, ['ip', fam, 'route', 'show', 'default']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '', `${ns} has a default route (${fam})`);
    }
  }
  // The veth pair never exists in the host namespace.
  const host = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  assert.ok(!host.includes(lab.serverIf) && !host.includes(lab.clientIf), 'veth visible in the host namespace');
}

test('requireRoot: root and ip netns are available (fails, never skips)', () => {
  requireRoot();
});

test(
  'lab: firewalld blocks ssh until a rich rule allows the client (IPv4 + IPv6), then cleans up',
  { timeout: 120_000 },
  async (t) => {
    requireRoot();
    const t0 = Date.now();
    const lab = await startLab({ extraClientAddrs: 2 });
    t.diagnostic(`startLab: ${Date.now() - t0} ms (${lab.serverNs}, ${lab.serverAddr}, ${lab.serverAddr6})`);
    try {
      await assertTopology(lab);
      assert.equal(lab.extraClientAddrs.length, 2);

      // firewalld is up on the private bus with the lab's zone setup.
      assert.equal(await lab.firewallCmd('--state'), 'running');
      const all = await lab.firewallCmd('--zone=public', '--list-all');
      const field = (name: string): string[] =>
        (all.split('\n').find((l) => l.trim().startsWith(`${name}:`)) ?? '').trim().split(/\s+/).slice(1);
      assert.ok(field('interfaces').includes(lab.serverIf), `public zone lacks ${lab.serverIf}:\n${all}`);
      assert.ok(!field('services').includes('ssh'), `ssh service still in public:\n${all}`);
      assert.deepEqual(await lab.richRules(), []);

      // sshd runs, but only loopback inside the server namespace reaches it.
      assert.match((await lab.sshBanner({ from: 'server', host: '127.0.0.1' })) ?? '<null>', SSH_BANNER);
      assert.match((await lab.sshBanner({ from: 'server', host: '::1' })) ?? '<null>', SSH_BANNER);
      const tBlocked = Date.now();
      assert.equal(await lab.sshBanner(), null, 'client reached sshd before any rule');
      t.diagnostic(`blocked probe answered in ${Date.now() - tBlocked} ms (REJECT, not a timeout)`);
      assert.equal(
        await lab.sshBanner({ host: lab.serverAddr6 }),
        null,
        'client reached sshd over IPv6 before any rule',
      );

      // An IPv4 rich rule for the client's address opens ssh for that source only.
      await lab.firewallCmd('--zone=public', `--add-rich-rule=${ipv4Rule(lab.clientAddr)}`, '--timeout=20');
      assert.deepEqual(await lab.richRules(), [ipv4Rule(lab.clientAddr)]);
      assert.match((await lab.sshBanner()) ?? '<null>', SSH_BANNER);
      assert.equal(await lab.sshBanner({ source: lab.extraClientAddrs[0] }), null, 'other client source was let in');
      assert.equal(await lab.sshBanner({ host: lab.serverAddr6 }), null, 'IPv4 rule opened IPv6');

      // The rule is per source, not per destination: a second server address works too.
      const prefix = lab.serverAddr.split('.').slice(0, 3).join('.');
      await lab.addServerAddress(`${prefix}.9/24`);
      assert.match((await lab.sshBanner({ host: `${prefix}.9` })) ?? '<null>', SSH_BANNER);
      await lab.delServerAddress(`${prefix}.9/24`);
      assert.equal(await lab.sshBanner({ host: `${prefix}.9`, timeoutMs: 500 }), null, 'removed address still answers');

      // IPv6: family ipv6 rule for the client's ULA.
      await lab.firewallCmd('--zone=public', `--add-rich-rule=${ipv6Rule(lab.clientAddr6)}`, '--timeout=20');
      assert.ok((await lab.richRules()).includes(ipv6Rule(lab.clientAddr6)), 'IPv6 rule listed verbatim');
      assert.match((await lab.sshBanner({ host: lab.serverAddr6 })) ?? '<null>', SSH_BANNER);

      // --timeout rules expire by themselves and access is gone again (20 s: the checks above take
      // several firewall-cmd calls, ~2 s each on a loaded 2-core machine).
      const tExpire = Date.now();
      await lab.waitFor(async () => (await lab.richRules()).length === 0, 40_000, 250);
      t.diagnostic(`timed rules expired ${Date.now() - tExpire} ms after the check started`);
      assert.equal(await lab.sshBanner(), null, 'access survived rule expiry');
      assert.equal(await lab.sshBanner({ host: lab.serverAddr6 }), null, 'IPv6 access survived rule expiry');

      // waitFor reports a timeout as an error.
      await assert.rejects(
        lab.waitFor(async () => false, 300),
        /not met within 300 ms/,
      );
    } finally {
      const t1 = Date.now();
      await lab.stop();
      t.diagnostic(`stop: ${Date.now() - t1} ms`);
    }
    assertNothingLeft(lab);
    await lab.stop(); // idempotent
    await assert.rejects(lab.execIn('server', ['true']), /stopped/);
  },
);

test('lab: firewalld restart (stopFirewalld/startFirewalld)', { timeout: 120_000 }, async (t) => {
  requireRoot();
  const lab = await startLab({ ipv6: false });
  try {
    assert.equal(lab.serverAddr6, '');
    assert.equal(await lab.sshBanner(), null);

    const ts = Date.now();
    await lab.stopFirewalld();
    t.diagnostic(`stopFirewalld: ${Date.now() - ts} ms`);
    await assert.rejects(lab.firewallCmd('--state'), /not running|exit/);
    // CleanupOnExit=yes: without firewalld there is no ruleset at all.
    const nft = await lab.execIn('server', ['nft', 'list', 'ruleset']);
    assert.equal(nft.stdout.trim(), '', `ruleset left after firewalld exit:\n${nft.stdout}`);
    assert.match((await lab.sshBanner()) ?? '<null>', SSH_BANNER, 'no firewall → ssh open');

    const tr = Date.now();
    await lab.startFirewalld();
    t.diagnostic(`startFirewalld: ${Date.now() - tr} ms`);
    assert.equal(await lab.firewallCmd('--state'), 'running');
    assert.equal(await lab.sshBanner(), null, 'restarted firewalld does not block ssh');
    await assert.rejects(lab.startFirewalld(), /already running/);
  } finally {
    await lab.stop();
  }
  assertNothingLeft(lab);
});

test('lab: two labs at once do not collide', { timeout: 120_000 }, async (t) => {
  requireRoot();
  const t0 = Date.now();
  const [a, b] = await Promise.all([startLab(), startLab()]);
  t.diagnostic(`two labs started concurrently in ${Date.now() - t0} ms`);
  try {
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.serverNs, b.serverNs);
    assert.notEqual(a.clientNs, b.clientNs);
    assert.notEqual(a.serverIf, b.serverIf);
    assert.notEqual(a.tmpDir, b.tmpDir);
    assert.notEqual(a.busAddress, b.busAddress);
    await Promise.all([assertTopology(a), assertTopology(b)]);
    assert.deepEqual(await Promise.all([a.firewallCmd('--state'), b.firewallCmd('--state')]), ['running', 'running']);

    // A rule in lab A affects lab A only.
    await a.firewallCmd('--zone=public', `--add-rich-rule=${ipv4Rule(a.clientAddr)}`);
    assert.deepEqual(await a.richRules(), [ipv4Rule(a.clientAddr)]);
    assert.deepEqual(await b.richRules(), []);
    assert.match((await a.sshBanner()) ?? '<null>', SSH_BANNER);
    assert.equal(await b.sshBanner(), null);
  } finally {
    const t1 = Date.now();
    await Promise.all([a.stop(), b.stop()]);
    t.diagnostic(`two labs stopped concurrently in ${Date.now() - t1} ms`);
  }
  assertNothingLeft(a);
  assertNothingLeft(b);
});

test('cleanupStale removes namespaces of dead runs only', async () => {
  requireRoot();
  // A pid that certainly belongs to no live process any more.
  const dead = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  const deadPid = Number.parseInt(dead.stdout.trim(), 10);
  assert.ok(deadPid > 0);
  const stale = `kn-${deadPid}-abcdef-s`;
  const alive = `kn-${process.pid}-fedcba-s`;
  for (const ns of [stale, alive]) assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  try {
    await cleanupStale();
    const names = netnsNames();
    assert.ok(!names.includes(stale), 'stale namespace survived cleanupStale()');
    assert.ok(names.includes(alive), 'cleanupStale() removed the namespace of a live process');
  } finally {
    for (const ns of [stale, alive]) spawnSync('ip', ['netns', 'del', ns]);
  }
});
