/**
 * The SRPM rebuilt and the RPM run under systemd on the Node.js of other
 * distributions (issue #17 item 7): Debian trixie (Node.js 20) and sid
 * (Node.js 24, standing in for RHEL 10's newer Node.js). Per release, on its
 * cached root (test/lab/fw-roots.ts: systemd, dbus, firewalld, sshd, rpm,
 * libpcap, that release's own nodejs, and the build dependencies g++, make,
 * libpcap-dev, libnode-dev's headers, node-gyp):
 *
 *  - a container boots it with `systemd-nspawn -b` (test/lab/nspawn.ts);
 *  - inside, `rpmbuild --rebuild` of the SRPM that packaging/build-rpm.sh made
 *    on this host, offline, against the container's Node.js headers: the cap
 *    addon's NODE_MODULE_VERSION is that node's `process.versions.modules`,
 *    and the RPM requires `nodejs(abiN)` of that node's major;
 *  - the RPM installed with `rpm -i --nodeps` (a dpkg system: rpm's database
 *    knows none of the packages dpkg installed), the unit enabled and started:
 *    it becomes active, a knock from the host side opens SSH and the close
 *    knock closes it.
 *
 * Needs root, systemd-nspawn, debootstrap and the Debian mirror on a first
 * run (the roots are cached). It fails, never skips.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { Machine, run } from '../lab/nspawn';
import { ensureFwRoot, type Release } from '../lab/fw-roots';

const REPO = resolve(__dirname, '..', '..', '..');
const KNOCK = join(REPO, 'bin', 'knock');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

/** The SRPM, built once on this host by packaging/build-rpm.sh (its second-to-last line). */
let srpm = '';
let srpmError: Error | undefined;
const timings: string[] = [];

before(
  async () => {
    const t0 = Date.now();
    const b = await run('bash', [join(REPO, 'packaging', 'build-rpm.sh')], 590_000);
    const lines = b.stdout.trim().split('\n');
    srpm = lines[lines.length - 2] ?? '';
    if (b.code !== 0 || !srpm.endsWith('.src.rpm'))
      srpmError = new Error(`build-rpm.sh failed (exit ${b.code}):\n${b.stderr.slice(-4000)}`);
    timings.push(`SRPM in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  },
  { timeout: 600_000 },
);

after(() => {
  process.stdout.write(`nspawn-node test: ${timings.join('; ')}\n`);
});

/** Node.js majors the releases ship (Debian's nodejs). */
const NODE_MAJOR: Partial<Record<Release, number>> = { trixie: 20, sid: 24 };

for (const release of ['trixie', 'sid'] as const) {
  describe(`${release}: the SRPM rebuilds against its Node.js ${NODE_MAJOR[release]} and the RPM runs under systemd`, () => {
    const subnet = 1 + ((randomBytes(1)[0] ?? 0) % 254);
    const HOST_ADDR = `10.203.${subnet}.1`;
    const GUEST_ADDR = `10.203.${subnet}.2`;
    const RULE = `rule family="ipv4" source address="${HOST_ADDR}" service name="ssh" accept`;
    let machine: Machine | undefined;
    let setupError: Error | undefined;
    let modules = '';
    let major = 0;

    const m = (): Machine => {
      if (srpmError) throw srpmError;
      if (setupError) throw setupError;
      assert.ok(machine);
      return machine;
    };
    const unit = async (): Promise<Record<string, string>> => {
      const r = await m().exec(['systemctl', 'show', 'knockd.service', '-pActiveState,SubState,StatusText']);
      return Object.fromEntries(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
    };
    const richRules = async (): Promise<string[]> => {
      const r = await m().exec(['firewall-cmd', '--zone=public', '--list-rich-rules']);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
    };
    const banner = (timeoutMs = 3000): Promise<string> =>
      new Promise((res) => {
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
    const knock = async (...ports: number[]): Promise<void> => {
      const r = await run(process.execPath, [KNOCK, GUEST_ADDR, ...ports.map(String)]);
      assert.equal(r.code, 0, `knock: ${r.stderr}`);
    };

    before(
      async () => {
        try {
          const root = await ensureFwRoot(release);
          timings.push(
            `${release} root ${root.builtSeconds ? `built in ${root.builtSeconds.toFixed(0)} s` : 'cached'}`,
          );
          machine = new Machine(root.path);
          const t0 = Date.now();
          await machine.boot();
          timings.push(`${release} boot ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        } catch (err) {
          setupError = err as Error;
        }
      },
      { timeout: 1_800_000 },
    );
    after(async () => {
      await machine?.destroy();
    });

    test(
      `the container runs systemd, dbus, firewalld ${release === 'sid' ? '2.5' : '2.3'} and its own Node.js ${NODE_MAJOR[release]}`,
      { timeout: 60_000 },
      async () => {
        assert.equal((await m().sh('cat /proc/1/comm')).trim(), 'systemd');
        const r = await m().exec(['systemctl', 'is-active', 'dbus.service', 'firewalld.service', 'ssh.service']);
        assert.deepEqual(r.stdout.trim().split('\n'), ['active', 'active', 'active'], r.stdout + r.stderr);
        const v = (
          await m().sh("node -p \"process.versions.node.split('.')[0] + ' ' + process.versions.modules\"")
        ).trim();
        [major, modules] = [Number(v.split(' ')[0]), v.split(' ')[1] ?? ''];
        timings.push(`${release} node ${major} (modules ${modules})`);
        assert.equal(major, NODE_MAJOR[release]);
        assert.match(modules, /^\d+$/);
      },
    );

    test(
      'rpmbuild --rebuild of the SRPM inside, offline, against that Node.js: Requires nodejs(abiN), the addon of its ABI',
      { timeout: 900_000 },
      async () => {
        await copyFile(srpm, join(m().root, 'root/knockd.src.rpm'));
        const t0 = Date.now();
        // --nodeps: a dpkg system (the build dependencies are there as Debian packages).
        const b = await m().exec(
          ['rpmbuild', '--rebuild', '--nodeps', '/root/knockd.src.rpm', '--define', '_topdir /root/rpmbuild'],
          900_000,
        );
        assert.equal(b.code, 0, `rpmbuild --rebuild:\n${b.stdout.slice(-3000)}\n${b.stderr.slice(-3000)}`);
        timings.push(`${release} rpmbuild --rebuild ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        const rpm = (await m().sh('ls /root/rpmbuild/RPMS/*/knockd-*.rpm')).trim();
        assert.ok(rpm.endsWith('.rpm'), rpm);
        await m().sh(`cp ${rpm} /root/knockd.rpm`);
        const requires = await m().sh('rpm -qp --requires /root/knockd.rpm');
        assert.match(requires, new RegExp(`^nodejs\\(abi${major}\\)$`, 'm'), requires);
        assert.doesNotMatch(requires, new RegExp(`^nodejs\\(abi(?!${major}\\))`, 'm'));
      },
    );

    test(
      'the RPM installs, the unit is active on host0; a knock opens SSH, the close knock closes it',
      { timeout: 180_000 },
      async () => {
        const i = await m().exec(['rpm', '-i', '--nodeps', '/root/knockd.rpm']);
        assert.equal(i.code, 0, `rpm -i: ${i.stdout}${i.stderr}`);
        // The packaged addons load in this node (built for its NODE_MODULE_VERSION).
        for (const a of ['cap', 'sdnotify']) {
          const js = `require('/usr/lib/knockd/node_modules/cap/build/Release/${a}.node'); console.log(process.versions.modules)`;
          const load = await m().exec(['node', '-e', js]);
          assert.equal(load.code, 0, `${a}.node: ${load.stderr}`);
          assert.equal(load.stdout.trim(), modules);
        }
        await m().sh(`sed -i 's/^OPTIONS=.*/OPTIONS="-i host0"/' /etc/sysconfig/knockd`);
        for (const args of [
          ['link', 'set', m().hostIf, 'addrgenmode', 'none'],
          ['addr', 'add', `${HOST_ADDR}/24`, 'dev', m().hostIf],
          ['link', 'set', m().hostIf, 'up'],
        ]) {
          const r = await run('ip', args);
          assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`);
        }
        await m().sh(`ip addr add ${GUEST_ADDR}/24 dev host0 && ip link set host0 up`);
        await m().sh('systemctl enable knockd.service && systemctl start --no-block knockd.service');
        const u = await waitFor(
          'knockd active',
          async () => {
            const now = await unit();
            return now.ActiveState === 'active' ? now : undefined;
          },
          45_000,
        ).catch(async (e: Error) => {
          const st = await unit();
          const caps = await m().exec([
            'sh',
            '-c',
            'grep ^Cap /proc/$(systemctl show -p MainPID --value knockd)/status; systemctl --version | head -1',
          ]);
          throw new Error(`${e.message}: ${st.ActiveState}/${st.SubState} STATUS=${st.StatusText}\n${caps.stdout}`);
        });
        assert.match(u.StatusText ?? '', /^listening on host0, 2 doors, 0 open/);
        assert.deepEqual(await richRules(), []);
        assert.doesNotMatch(await banner(), /^SSH-/, 'SSH is closed before the knock');
        await knock(3333, 4444, 5555);
        await waitFor('the rich rule', async () => (await richRules()).includes(RULE), 10_000).catch(
          async (e: Error) => {
            const why = await m().exec([
              'sh',
              '-c',
              'tail -n 30 /var/log/knockd.log; journalctl -u knockd --no-pager -n 30; firewall-cmd --zone=public --list-all; ip -br addr',
            ]);
            throw new Error(`${e.message}\n${why.stdout}${why.stderr}`);
          },
        );
        assert.match(await banner(), /^SSH-2\.0-OpenSSH/);
        await knock(6666, 7777, 8888);
        await waitFor('the rule removed', async () => !(await richRules()).includes(RULE), 10_000);
        assert.doesNotMatch(await banner(), /^SSH-/, 'SSH is closed again');
        assert.equal((await unit()).ActiveState, 'active');
      },
    );
  });
}
