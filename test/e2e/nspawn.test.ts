/**
 * The RPM on a machine booted with systemd, the way an admin uses it: a
 * Debian 12 container with systemd as PID 1 (`systemd-nspawn -b`, see
 * test/lab/nspawn.ts), real dbus, firewalld and sshd services, our RPM
 * installed with rpm, `OPTIONS="-i host0"` in /etc/sysconfig/knockd, the unit
 * enabled, then a boot in which host0 gets its address late. Knocks come from
 * the host side of the veth pair, to the container's address only.
 *
 * Node.js and libpcap as RHEL has them: /usr/bin/node (Node.js 20: the host's,
 * bound read-only, since Debian 12's own is 18) and the OS's libpcap package.
 * The RPM is installed with `rpm -i --nodeps`: this is a dpkg system, whose rpm
 * database knows none of nodejs, firewalld, systemd or libpcap, although all
 * of them are installed (dpkg owns them); the payload and scriptlets are the
 * real ones.
 *
 * Needs root, systemd-nspawn (systemd-container), debootstrap and the Debian
 * mirror (first run only: the root file system is cached). It fails, never
 * skips, when it cannot boot.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { existsSync, realpathSync } from 'node:fs';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { Machine, ensureRootfs, run } from '../lab/nspawn';
import { parseStatus, unprivilegedProblem } from '../../src/capture/privileges';

const REPO = resolve(__dirname, '..', '..', '..');
const KNOCK = join(REPO, 'bin', 'knock');
const subnet = 1 + ((randomBytes(1)[0] ?? 0) % 254);
const HOST_ADDR = `10.202.${subnet}.1`;
const GUEST_ADDR = `10.202.${subnet}.2`;
const RULE = `rule family="ipv4" source address="${HOST_ADDR}" service name="ssh" accept`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  diag?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${diag ? `\n${await diag()}` : ''}`);
    await sleep(200);
  }
}

function need(why: string | false): void {
  if (why) throw new Error(`cannot run: ${why}; run "bash scripts/setup.sh" (it installs what the tests need)`);
}

const have = (cmd: string): boolean => ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, cmd)));

let machine: Machine | undefined;
let rpmPath = '';
let setupError: Error | undefined;
const timings: string[] = [];

before(
  async () => {
    try {
      need(process.getuid?.() !== 0 ? 'needs root' : false);
      need(!have('systemd-nspawn') ? 'systemd-nspawn not installed (apt-get install systemd-container)' : false);
      need(!have('debootstrap') ? 'debootstrap not installed (apt-get install debootstrap)' : false);
      let t0 = Date.now();
      const rootfs = await ensureRootfs();
      timings.push(
        rootfs.builtSeconds
          ? `rootfs built by debootstrap in ${rootfs.builtSeconds.toFixed(0)} s`
          : `rootfs cached (${rootfs.path})`,
      );
      t0 = Date.now();
      const b = await run('bash', [join(REPO, 'packaging', 'build-rpm.sh')], 590_000);
      rpmPath = b.stdout.trim().split('\n').pop() ?? '';
      if (b.code !== 0 || !rpmPath.endsWith('.x86_64.rpm'))
        throw new Error(`build-rpm.sh failed (exit ${b.code}):\n${b.stderr.slice(-4000)}`);
      timings.push(`SRPM + RPM in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      // This test's own node (>= 20) as the container's /usr/bin/node.
      machine = new Machine(rootfs.path, { bindRo: [`${realpathSync(process.execPath)}:/usr/bin/node`] });
    } catch (err) {
      setupError = err as Error;
    }
  },
  { timeout: 1_800_000 },
);

after(async () => {
  await machine?.destroy();
  process.stdout.write(`nspawn test: ${timings.join('; ')}\n`);
});

function m(): Machine {
  if (setupError) throw setupError;
  assert.ok(machine);
  return machine;
}

/** systemctl show of the unit, as a map. */
async function unit(props = 'ActiveState,SubState,StatusText,MainPID'): Promise<Record<string, string>> {
  const r = await m().exec(['systemctl', 'show', 'knockd.service', `-p${props}`]);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

const diag = async (): Promise<string> => {
  const s = await m().exec(['systemctl', 'status', 'knockd.service', '--no-pager', '-l']);
  const j = await m().exec(['journalctl', '-b', '-u', 'knockd.service', '--no-pager', '-n', '40']);
  return `${s.stdout}\n${j.stdout}`;
};

async function richRules(): Promise<string[]> {
  const r = await m().exec(['firewall-cmd', '--zone=public', '--list-rich-rules']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** The SSH banner, from the host side, or the error. */
function sshBanner(timeoutMs = 3000): Promise<string> {
  return new Promise((res) => {
    const s = connect({ host: GUEST_ADDR, port: 22, localAddress: HOST_ADDR });
    let buf = '';
    const done = (v: string): void => {
      clearTimeout(t);
      s.destroy();
      res(v);
    };
    const t = setTimeout(() => done(`no answer in ${timeoutMs} ms`), timeoutMs);
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl).trim());
    });
    s.on('error', (e) => done(`error: ${e.message}`));
  });
}

async function knock(...ports: number[]): Promise<void> {
  const r = await run(process.execPath, [KNOCK, GUEST_ADDR, ...ports.map(String)]);
  assert.equal(r.code, 0, `knock: ${r.stderr}`);
}

async function hostSideUp(): Promise<void> {
  for (const args of [
    ['link', 'set', m().hostIf, 'addrgenmode', 'none'],
    ['addr', 'add', `${HOST_ADDR}/24`, 'dev', m().hostIf],
    ['link', 'set', m().hostIf, 'up'],
  ]) {
    const r = await run('ip', args);
    assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`);
  }
}

test(
  'a container boots with systemd as PID 1; dbus, firewalld and sshd run as its services',
  { timeout: 120_000 },
  async () => {
    const t0 = Date.now();
    await m().boot();
    timings.push(`first boot ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal((await m().sh('cat /proc/1/comm')).trim(), 'systemd');
    const r = await m().exec(['systemctl', 'is-active', 'dbus.service', 'firewalld.service', 'ssh.service']);
    assert.deepEqual(r.stdout.trim().split('\n'), ['active', 'active', 'active'], r.stdout + r.stderr);
    assert.match(await m().sh('node --version'), /^v2\d\./, 'Node.js >= 20 at /usr/bin/node');
    // The container's own network namespace: host0, and no address on it yet.
    assert.match(await m().sh('ip -br link show host0'), /^host0/);
    assert.doesNotMatch(await m().sh('ip -4 -br addr show host0'), /\d+\.\d+\.\d+\.\d+/);
  },
);

test('the RPM installs with rpm; OPTIONS="-i host0"; the unit is enabled', { timeout: 120_000 }, async () => {
  await copyFile(rpmPath, join(m().root, 'root/knockd.rpm'));
  const r = await m().exec(['rpm', '-i', '--nodeps', '/root/knockd.rpm']);
  assert.equal(r.code, 0, `rpm -i: ${r.stdout}${r.stderr}`);
  assert.match(await m().sh('rpm -q knockd'), /^knockd-/);
  await m().sh(`sed -i 's/^OPTIONS=.*/OPTIONS="-i host0"/' /etc/sysconfig/knockd`);
  assert.match(await m().sh('cat /etc/sysconfig/knockd'), /^OPTIONS="-i host0"$/m);
  await m().sh('systemctl enable knockd.service');
  assert.equal((await m().sh('systemctl is-enabled knockd.service')).trim(), 'enabled');
  // The shipped config, as installed (a config file, root only).
  assert.equal((await m().sh('stat -c %a /etc/knockd.conf')).trim(), '600');
});

test(
  "on the next boot the unit waits for host0's address, then is active: STATUS=listening on host0",
  { timeout: 180_000 },
  async () => {
    await m().poweroff();
    const t0 = Date.now();
    // knockd is wanted by multi-user.target, so the boot is not over while it waits: wait for the services.
    await m().boot({ units: ['dbus.service', 'firewalld.service', 'ssh.service'] });
    timings.push(`second boot ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // No address on host0: knockd is still starting, and so is the system (multi-user.target waits for it).
    const waiting = await waitFor(
      'knockd waiting for host0',
      async () => {
        const u = await unit();
        return u.ActiveState === 'activating' && /^waiting for an address on host0/.test(u.StatusText ?? '')
          ? u
          : undefined;
      },
      30_000,
      diag,
    );
    assert.equal(waiting.SubState, 'start');
    await sleep(2000);
    assert.equal((await unit()).ActiveState, 'activating', 'still waiting without an address');
    assert.equal((await m().exec(['systemctl', 'is-system-running'])).stdout.trim(), 'starting');

    await hostSideUp();
    await m().sh(`ip addr add ${GUEST_ADDR}/24 dev host0 && ip link set host0 up`);
    const active = await waitFor(
      'knockd active',
      async () => {
        const u = await unit();
        return u.ActiveState === 'active' ? u : undefined;
      },
      30_000,
      diag,
    );
    assert.match(active.StatusText ?? '', /^listening on host0, 2 doors, 0 open/);
    assert.equal(active.SubState, 'running');
    timings.push(`active ${((Date.now() - t0) / 1000).toFixed(1)} s after the second boot began`);
    // READY=1 ends the boot.
    const r = await m().exec(['systemctl', 'is-system-running', '--wait'], 30_000);
    assert.equal(r.stdout.trim(), 'running', (await m().exec(['systemctl', '--failed', '--no-pager'])).stdout);
  },
);

test(
  'a knock from the host side adds the rule, SSH answers; the close knock removes it',
  { timeout: 120_000 },
  async () => {
    assert.deepEqual(await richRules(), [], 'nothing open before the knock');
    assert.doesNotMatch(await sshBanner(), /^SSH-/, 'SSH is closed before the knock');
    await knock(3333, 4444, 5555);
    await waitFor('the rich rule', async () => (await richRules()).includes(RULE), 10_000, diag);
    assert.match(await sshBanner(), /^SSH-2\.0-OpenSSH/);
    await waitFor('STATUS 1 open', async () => /, 1 open/.test((await unit()).StatusText ?? ''), 5000, diag);

    await knock(6666, 7777, 8888);
    await waitFor('the rule removed', async () => !(await richRules()).includes(RULE), 10_000, diag);
    assert.deepEqual(await richRules(), []);
    assert.doesNotMatch(await sshBanner(), /^SSH-/, 'SSH is closed again');
  },
);

test('systemctl restart firewalld: the grant comes back', { timeout: 120_000 }, async () => {
  await knock(3333, 4444, 5555);
  await waitFor('the rich rule', async () => (await richRules()).includes(RULE), 10_000, diag);
  const r = await m().exec(['systemctl', 'restart', 'firewalld.service'], 90_000);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(
    'the rule back after the firewalld restart',
    async () => (await richRules()).includes(RULE),
    30_000,
    diag,
  );
  assert.match(await sshBanner(), /^SSH-2\.0-/);
  assert.equal((await unit()).ActiveState, 'active');
});

test('systemctl reload knockd keeps it running (same main PID), config re-read', { timeout: 60_000 }, async () => {
  const before = await unit();
  assert.equal(before.ActiveState, 'active');
  const r = await m().exec(['systemctl', 'reload', 'knockd.service']);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(
    're-reading in the log',
    async () =>
      /re-reading config file/.test(
        await m()
          .readFile('var/log/knockd.log')
          .catch(() => ''),
      ),
    10_000,
    diag,
  );
  await sleep(1000);
  const now = await unit();
  assert.equal(now.ActiveState, 'active');
  assert.equal(now.MainPID, before.MainPID);
  assert.ok((await richRules()).includes(RULE), 'the grant is still held');
});

test(
  "the unit's sandbox holds: no IP traffic from its cgroup (IPAddressDeny=any), only the main process notifies",
  { timeout: 60_000 },
  async () => {
    const u = await unit('ControlGroup,MainPID,NotifyAccess');
    assert.equal(u.NotifyAccess, 'main');
    // A shell moved into knockd.service's cgroup is under its IP filter: a TCP connect to sshd on
    // loopback gets nowhere there (the SYN is dropped), and works from outside (the control).
    const tryConnect = 'timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/22" && echo connected';
    const outside = await m().exec(['bash', '-c', tryConnect]);
    assert.match(outside.stdout, /connected/, `control: ${outside.stderr}`);
    const inside = await m().exec([
      'bash',
      '-c',
      `echo $$ > /sys/fs/cgroup${u.ControlGroup}/cgroup.procs && ${tryConnect}; echo rc=$?`,
    ]);
    assert.equal(inside.stdout.trim(), 'rc=124', `inside the unit's cgroup: ${inside.stdout}${inside.stderr}`);
    assert.equal((await unit()).MainPID, u.MainPID, 'the daemon is untouched');
    // The capture process under the unit: user knockd (from knockd.sysusers), nothing held.
    const pids = (await m().sh(`pgrep -P ${u.MainPID} -f worker.js`)).trim().split('\n').filter(Boolean);
    assert.equal(pids.length, 1, `one capture process below ${u.MainPID}: ${pids.join(' ')}`);
    const status = parseStatus(await m().sh(`cat /proc/${pids[0]}/status`));
    const knockdUid = Number((await m().sh('id -u knockd')).trim());
    assert.deepEqual(status.uid, [knockdUid, knockdUid, knockdUid, knockdUid]);
    assert.equal(unprivilegedProblem(status), undefined);
  },
);

test(
  '-l under the unit: DNS is blocked, the daemon says so once and logs bare addresses; knocks still open',
  { timeout: 90_000 },
  async () => {
    await m().sh(`sed -i 's/^OPTIONS=.*/OPTIONS="-i host0 -l"/' /etc/sysconfig/knockd`);
    try {
      const r = await m().exec(['systemctl', 'restart', 'knockd.service'], 60_000);
      assert.equal(r.code, 0, r.stderr);
      await waitFor(
        'knockd active',
        async () => ((await unit()).ActiveState === 'active' ? true : undefined),
        30_000,
        diag,
      );
      await knock(6666, 7777, 8888); // close: nothing to close, but its stages are logged with -l
      await knock(3333, 4444, 5555);
      await waitFor('the rich rule', async () => (await richRules()).includes(RULE), 10_000, diag);
      const log = await waitFor(
        'the -l warning',
        async () => {
          const text = await m()
            .readFile('var/log/knockd.log')
            .catch(() => '');
          return /-l: reverse lookup of .* failed/.test(text) ? text : undefined;
        },
        15_000,
        diag,
      );
      assert.equal(log.match(/-l: reverse lookup of/g)?.length, 1, 'said once');
      assert.match(log, /IPAddressDeny=any blocks DNS/);
      // the knocker as a bare address: "10.202.x.1: openSSH: Stage 1", no "(name)"
      assert.match(log, new RegExp(`\\] ${HOST_ADDR.replace(/\./g, '\\.')}: openSSH: Stage 1`));
    } finally {
      await m().sh(`sed -i 's/^OPTIONS=.*/OPTIONS="-i host0"/' /etc/sysconfig/knockd`);
      await m().exec(['systemctl', 'restart', 'knockd.service'], 60_000);
    }
  },
);

// 2.3 before CAP_KILL (issue 18.8: ending a stuck capture process of another uid), which costs 0.1.
test('systemd-analyze security knockd (on the booted machine) is at most 2.4', { timeout: 60_000 }, async () => {
  const r = await m().exec(['systemd-analyze', 'security', 'knockd.service', '--no-pager']);
  const score = /Overall exposure level for knockd\.service: (\d+(?:\.\d+)?)/.exec(r.stdout)?.[1];
  assert.ok(score, `${r.stdout}${r.stderr}`);
  timings.push(`exposure ${score}`);
  assert.ok(Number(score) <= 2.4, `exposure ${score}`);
});

test(
  "the packaged dbus-next (no usocket, xml2js 0.6) parses firewalld's introspection and serves ours",
  { timeout: 60_000 },
  async () => {
    const js = `
    const dbus = require('/usr/lib/knockd/node_modules/dbus-next');
    const bus = dbus.systemBus();
    bus.getProxyObject('org.fedoraproject.FirewallD1', '/org/fedoraproject/FirewallD1').then((o) => {
      console.log(Object.keys(o.interfaces).sort().join(' '));
      bus.disconnect();
    }, (e) => { console.error(e); process.exit(1); });`;
    const r = await m().exec(['node', '-e', js]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\borg\.fedoraproject\.FirewallD1\b/);
    assert.match(r.stdout, /\borg\.fedoraproject\.FirewallD1\.zone\b/);
    assert.equal((await m().exec(['test', '-e', '/usr/lib/knockd/node_modules/usocket'])).code, 1, 'no usocket');
    // Our exported object: dbus-next builds its introspection XML with xml2js.
    const i = await m().exec(['busctl', 'introspect', 'org.knockd.Knockd1', '/org/knockd/Knockd1', '--no-pager']);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /org\.freedesktop\.DBus\.Introspectable/);
    assert.match(i.stdout, /org\.knockd\.Knockd1/);
  },
);
