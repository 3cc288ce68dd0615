/**
 * Self-test of the lab's firewalld version matrix (test/lab/fw-roots.ts):
 * with KNLAB_FIREWALLD=<release> the lab's firewalld and firewall-cmd are
 * that Debian release's, on the lab's private bus with that release's bus
 * policy; a timed rule reaches the kernel; firewalld restarts; the local
 * unprivileged user of execAsNobody() reaches the bus; and no mount of the
 * release root is ever visible outside firewalld's own mount namespace, nor
 * survives stop(). Without KNLAB_FIREWALLD it checks the host's firewalld.
 *
 *   KNLAB_FIREWALLD=bullseye node --test dist/test/e2e/lab-release.test.js
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { test } from 'node:test';

import { firewalldChoice, needsRoot } from '../lab/fw-roots';
import { requireRoot, startLab } from '../lab/lab';

/** The firewalld each release ships (Debian's packages). */
const EXPECTED: Record<string, RegExp> = {
  bullseye: /^0\.9\./,
  bookworm: /^1\.3\./,
  trixie: /^2\.3\./,
  sid: /^2\.[4-9]\./,
};

/** Mount table lines of a process that mention `needle`. */
function mountsOf(pid: number | 'self', needle: string): string[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .filter((l) => l.includes(needle));
  } catch {
    return [];
  }
}

test('KNLAB_FIREWALLD: an unknown release is refused, never replaced by the host', async () => {
  assert.throws(() => firewalldChoice('wheezy'), /KNLAB_FIREWALLD=wheezy: expected one of host, bullseye/);
  await assert.rejects(startLab({ firewalldRelease: 'rhel7' }), /KNLAB_FIREWALLD=rhel7/);
  assert.equal(firewalldChoice(''), 'host');
});

test(
  'the lab runs the chosen release: firewall-cmd, timed rule, nft, restart, nobody, no mount left',
  { timeout: 180_000 },
  async (t) => {
    requireRoot();
    const release = firewalldChoice();
    const lab = await startLab({ sshd: false });
    const tmp = lab.tmpDir;
    const pidsInServer = (): number[] =>
      spawnSync('ip', ['netns', 'pids', lab.serverNs], { encoding: 'utf8' })
        .stdout.split('\n')
        .map(Number)
        .filter((p) => p > 0);
    try {
      t.diagnostic(`release ${lab.firewalldRelease}: firewalld ${lab.firewalldVersion}`);
      assert.equal(lab.firewalldRelease, release);
      if (release !== 'host') assert.match(lab.firewalldVersion, EXPECTED[release]);
      else assert.match(lab.firewalldVersion, /^\d+\.\d+\.\d+/);
      // firewall-cmd, however it is started, is the same release's.
      assert.equal((await lab.execIn('server', ['firewall-cmd', '--version'])).stdout.trim(), lab.firewalldVersion);

      const rule = `rule family="ipv4" source address="${lab.clientAddr}" service name="ssh" accept`;
      await lab.firewallCmd('--zone=public', `--add-rich-rule=${rule}`, '--timeout=300');
      assert.deepEqual(await lab.richRules(), [rule]);
      const nft = await lab.execIn('server', ['nft', 'list', 'ruleset']);
      assert.equal(nft.code, 0, nft.stderr);
      assert.ok(nft.stdout.includes(lab.clientAddr), `the rule is not in the kernel:\n${nft.stdout}`);
      // Hand removals are typed in many spellings: the raw form never throws.
      const raw = await lab.firewallCmdRaw([
        '--remove-rich-rule',
        `rule family=ipv4 source address=${lab.clientAddr} service name=ssh accept`,
      ]);
      assert.equal(raw.code, 0, raw.stderr);
      assert.deepEqual(await lab.richRules(), []);
      const bad = await lab.firewallCmdRaw(['--zone=nosuchzone', '--list-all']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr + bad.stdout, /INVALID_ZONE/);

      // The local unprivileged user reaches the bus (and is not root there).
      const who = await lab.execAsNobody(['id', '-u']);
      assert.equal(who.stdout.trim(), '65534');
      const hello = await lab.execAsNobody([
        'dbus-send',
        '--system',
        '--print-reply',
        '--dest=org.freedesktop.DBus',
        '/org/freedesktop/DBus',
        'org.freedesktop.DBus.GetNameOwner',
        'string:org.fedoraproject.FirewallD1',
      ]);
      assert.equal(hello.code, 0, hello.stderr);
      assert.match(hello.stdout, /string ":1\.\d+"/);
      const denied = await lab.execAsNobody([
        'dbus-send',
        '--system',
        '--print-reply',
        '--dest=org.fedoraproject.FirewallD1',
        '/org/fedoraproject/FirewallD1',
        'org.fedoraproject.FirewallD1.zone.addRichRule',
        'string:public',
        `string:${rule}`,
        'int32:0',
      ]);
      assert.notEqual(denied.code, 0, 'nobody added a rule');
      assert.deepEqual(await lab.richRules(), []);

      // The release root's mounts exist only in firewalld's own mount namespace.
      if (needsRoot(release)) {
        const holders = pidsInServer().filter((p) => mountsOf(p, 'knlab-fwroot').length > 0);
        assert.ok(holders.length > 0, 'no process holds the overlay of the release root');
      }
      assert.deepEqual(mountsOf('self', tmp), [], 'a lab mount is visible in the host mount namespace');

      await lab.stopFirewalld();
      await lab.startFirewalld();
      assert.equal(await lab.firewallCmd('--state'), 'running');
      assert.deepEqual(await lab.richRules(), []);
    } finally {
      await lab.stop();
    }
    assert.ok(!fs.existsSync(tmp), `${tmp} survived stop()`);
    assert.deepEqual(mountsOf('self', tmp), []);
    const findmnt = spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).stdout;
    assert.ok(!findmnt.includes(tmp), `mounted after stop():\n${findmnt}`);
  },
);
