/**
 * Packaging, end to end: packaging/build-rpm.sh builds the source RPM from
 * this checkout and the binary RPM from that SRPM (`rpmbuild --rebuild`); the
 * SRPM is rebuilt once more here without a network; the payload (lean: no
 * build tooling), dependencies, conflicts and config files are checked; it is
 * installed into a scratch root (`rpm --root DIR --nodeps --noscripts -i`)
 * and the installed app is run from there; a stand-in for EPEL's knock-server
 * and knock shows the package refused next to them and the switch. The systemd
 * unit is checked with `systemd-analyze verify` and `systemd-analyze security
 * --offline=true`, the man pages with groff, and the D-Bus policy with a
 * private dbus-daemon. (test/e2e/nspawn.test.ts installs the RPM on a machine
 * booted with systemd.)
 *
 * Needs rpm/rpmbuild (Debian: apt-get install rpm), node's headers, libpcap-dev,
 * g++, make, systemd-analyze, groff, python3-seccomp, dbus-daemon and unshare;
 * scripts/setup.sh installs them. A missing one fails the test, saying which.
 */
import { after, before, test } from 'node:test';
import { systemBusConfig } from '../lab/lab';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as dbus from 'dbus-next';

const execFileP = promisify(execFile);
const REPO = resolve(__dirname, '..', '..', '..');
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
};
const APPDIR = '/usr/lib/knockd';

function have(cmd: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/bin', '/sbin', ...(process.env.PATH ?? '').split(':')].some(
    (d) => d && existsSync(join(d, cmd)),
  );
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command; never throws for a non-zero exit. */
async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<Run> {
  try {
    const r = await execFileP(cmd, args, {
      maxBuffer: 64 * 1024 * 1024,
      timeout: opts.timeout ?? 60_000,
      cwd: opts.cwd,
      env: opts.env ?? process.env,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: `${e.stderr ?? ''}${typeof e.code === 'number' ? '' : `\n${e.message}`}`,
    };
  }
}

const tail = (s: string, n = 40): string => s.split('\n').slice(-n).join('\n');

/** A missing tool or privilege fails the test (CI must never skip silently); scripts/setup.sh installs them all. */
function need(why: string | false): void {
  if (why) throw new Error(`cannot run: ${why}; run "bash scripts/setup.sh" (it installs what the tests need)`);
}

const noRpm = !have('rpmbuild') || !have('rpm') ? 'rpmbuild/rpm not installed (Debian: apt-get install rpm)' : false;
const noAnalyze = !have('systemd-analyze') ? 'systemd-analyze not installed' : false;

const tmpDirs: string[] = [];
async function tmp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}
after(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// The RPM
// ---------------------------------------------------------------------------

let rpmPath = '';
let srpmPath = '';
let buildError: Error | undefined;
let root = '';

before(
  async () => {
    if (noRpm) return;
    const t0 = Date.now();
    const r = await run('bash', [join(REPO, 'packaging', 'build-rpm.sh')], { cwd: REPO, timeout: 590_000 });
    const lines = r.stdout.trim().split('\n');
    rpmPath = lines[lines.length - 1] ?? '';
    srpmPath = lines[lines.length - 2] ?? '';
    if (
      r.code !== 0 ||
      !rpmPath.endsWith('.x86_64.rpm') ||
      !existsSync(rpmPath) ||
      !srpmPath.endsWith('.src.rpm') ||
      !existsSync(srpmPath)
    ) {
      buildError = new Error(`build-rpm.sh failed (exit ${r.code}):\n${tail(r.stderr)}\n${tail(r.stdout)}`);
      return;
    }
    const size = (await run('du', ['-h', rpmPath])).stdout.split('\t')[0];
    process.stdout.write(`built ${rpmPath} (${size}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  },
  { timeout: 600_000 },
);

function built(): string {
  if (buildError) throw buildError;
  return rpmPath;
}

/** rpm -q... -p RPM, one line per entry. */
async function rpmQuery(...args: string[]): Promise<string[]> {
  const r = await run('rpm', ['-qp', ...args, built()]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

test("build-rpm.sh builds one x86_64 RPM whose version is package.json's", { timeout: 600_000 }, async () => {
  need(noRpm);
  const [nvra] = await rpmQuery('--qf', '%{NAME} %{VERSION} %{ARCH}\\n');
  assert.equal(nvra, `knockd ${PKG.version.replace(/-/g, '~')} x86_64`);
  assert.match(built(), /\/packaging\/out\/knockd-[^/]+\.x86_64\.rpm$/);
});

test('the source RPM holds the project, its production node_modules sources and the build-only tools, and builds from source', async () => {
  need(noRpm);
  built();
  const v = PKG.version.replace(/-/g, '~');
  assert.match(srpmPath, new RegExp(`/packaging/out/knockd-${v.replace(/\./g, '\\.')}-1[^/]*\\.src\\.rpm$`));
  let r = await run('rpm', ['-qpl', srpmPath]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').sort(), [
    `knockd-${v}-bundled-provides.txt`,
    `knockd-${v}-nm-dev.tgz`,
    `knockd-${v}-nm-prod.tgz`,
    `knockd-${v}.tar.gz`,
    'knockd.spec',
  ]);
  r = await run('rpm', ['-qp', '--requires', srpmPath]);
  const breqs = r.stdout.split('\n').map((l) => l.trim());
  for (const b of ['nodejs-devel >= 1:20', 'npm', 'libpcap-devel', 'gcc-c++', 'make', 'python3'])
    assert.ok(breqs.includes(b), `BuildRequires ${b}: ${breqs.join(' | ')}`);
  // The binary RPM was built by rpmbuild --rebuild of this SRPM: same source RPM name.
  const [sourcerpm] = await rpmQuery('--qf', '%{SOURCERPM}\\n');
  assert.equal(sourcerpm, srpmPath.split('/').pop());

  // Source1 is sources: cap's C++ and binding.gyp, nothing compiled, no usocket/node-gyp.
  const dir = await tmp('knockd-srpm-');
  // (rpm -i of a source RPM unpacks it into _topdir/SOURCES and SPECS; it touches no rpm database)
  r = await run('rpm', ['-i', '--define', `_topdir ${dir}`, srpmPath]);
  assert.equal(r.code, 0, r.stderr);
  r = await run('tar', ['-tzf', join(dir, 'SOURCES', `knockd-${v}-nm-prod.tgz`)]);
  assert.equal(r.code, 0, r.stderr);
  const prod = r.stdout.split('\n');
  assert.ok(
    prod.includes('node_modules/cap/binding.gyp') && prod.includes('node_modules/cap/src/binding.cc'),
    'cap sources in Source1',
  );
  assert.deepEqual(
    prod.filter((f) => /\.node$|^node_modules\/(usocket|node-gyp|typescript)\//.test(f)),
    [],
  );
  r = await run('tar', ['-tzf', join(dir, 'SOURCES', `knockd-${v}-nm-dev.tgz`)]);
  assert.ok(r.stdout.split('\n').includes('node_modules/typescript/bin/tsc'), 'tsc in Source2');
  // The vendored cap (whatever vendor/ holds) is what Source1 carries.
  const vendorTgz = (await run('bash', ['-c', `ls ${join(REPO, 'vendor')}/cap-*.tgz`])).stdout.trim();
  const vendorPkg = JSON.parse((await run('tar', ['-xzOf', vendorTgz, 'package/package.json'])).stdout) as {
    version: string;
  };
  const srcPkg = JSON.parse(
    (await run('tar', ['-xzOf', join(dir, 'SOURCES', `knockd-${v}-nm-prod.tgz`), 'node_modules/cap/package.json']))
      .stdout,
  ) as { version: string };
  assert.equal(srcPkg.version, vendorPkg.version);
});

test(
  'the SRPM rebuilds offline: rpmbuild --rebuild with no network and an empty HOME',
  { timeout: 300_000 },
  async () => {
    need(
      noRpm ||
        (process.getuid?.() !== 0 ? 'needs root (unshare -n)' : !have('unshare') ? 'unshare not installed' : false),
    );
    built();
    const top = await tmp('knockd-rebuild-');
    const home = await tmp('knockd-home-');
    // Debian: rpm's database does not know dpkg's packages, hence --nodeps (build-rpm.sh says the same).
    const nodeps = have('dpkg-query') ? '--nodeps' : '';
    // Node.js headers beside this node (as build-rpm.sh finds them), else the spec's default /usr.
    const nodedir = dirname(dirname(realpathSync(process.execPath)));
    const nodedirDef = existsSync(join(nodedir, 'include/node/node.h')) ? `--define "nodedir ${nodedir}"` : '';
    const r = await run(
      'unshare',
      [
        '-n',
        'bash',
        '-c',
        `ip link show | grep -v 'LOOPBACK' | grep -q 'state UP' && exit 99; rpmbuild --rebuild ${nodeps} ${nodedirDef} --define "_topdir ${top}" ${srpmPath}`,
      ],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, npm_config_cache: join(home, 'npm-cache') },
        timeout: 290_000,
      },
    );
    assert.notEqual(r.code, 99, 'a network interface is up inside unshare -n');
    assert.equal(r.code, 0, `rebuild without network:\n${tail(r.stderr, 60)}`);
    assert.match(r.stdout + r.stderr, /gyp info ok/, 'cap was compiled by node-gyp');
    const out = (await run('bash', ['-c', `ls ${top}/RPMS/*/knockd-*.rpm`])).stdout.trim();
    assert.ok(out.endsWith('.rpm'), `no RPM in ${top}/RPMS`);
    const a = (await run('rpm', ['-qpl', out])).stdout;
    assert.equal(a, (await run('rpm', ['-qpl', built()])).stdout, "same payload as build-rpm.sh's");
  },
);

test('the payload has the app, its native addon, launchers, configs, unit, man pages and docs', async () => {
  need(noRpm);
  const files = new Set(await rpmQuery('-l'));
  const expected = [
    `${APPDIR}/package.json`,
    `${APPDIR}/bin/knockd`,
    `${APPDIR}/bin/knock`,
    `${APPDIR}/dist/src/cli/knockd.js`,
    `${APPDIR}/dist/src/cli/knock.js`,
    `${APPDIR}/node_modules/cap/build/Release/cap.node`,
    `${APPDIR}/node_modules/cap/build/Release/sdnotify.node`,
    `${APPDIR}/node_modules/dbus-next/package.json`,
    `${APPDIR}/node_modules/pino/package.json`,
    '/usr/sbin/knockd',
    '/usr/bin/knock',
    '/etc/knockd.conf',
    '/etc/sysconfig/knockd',
    '/etc/logrotate.d/knockd',
    '/usr/lib/systemd/system/knockd.service',
    '/usr/lib/sysusers.d/knockd.conf',
    '/usr/share/dbus-1/system.d/org.knockd.Knockd1.conf',
    '/usr/share/man/man8/knockd.8.gz',
    '/usr/share/man/man1/knock.1.gz',
    '/usr/share/doc/knockd/README.md',
    '/usr/share/doc/knockd/fail2ban/knockd.conf',
    '/usr/share/licenses/knockd/LICENSE',
  ];
  const missing = expected.filter((f) => !files.has(f));
  assert.deepEqual(missing, [], `missing from the RPM: ${missing.join(', ')}`);
  // Production tree only: no compiler, no tests, no TypeScript sources or maps.
  const stray = [...files].filter(
    (f) =>
      f.startsWith(`${APPDIR}/node_modules/typescript/`) ||
      f.startsWith(`${APPDIR}/node_modules/@types/`) ||
      f.startsWith(`${APPDIR}/dist/test/`) ||
      f.startsWith(`${APPDIR}/src/`) ||
      (f.startsWith(`${APPDIR}/dist/`) && f.endsWith('.map')) ||
      f.includes('/build/Release/obj.target/'),
  );
  assert.deepEqual(stray.slice(0, 10), [], 'dev-only files in the RPM');
  // Lean: no build tooling or its download stack, no addon sources, no tests.
  const tooling = [...files].filter(
    (f) =>
      /\/node_modules\/(node-gyp|tar|cacache|make-fetch-happen|minipass-fetch|usocket|nan|typescript|ini)\//.test(
        `${f}/`,
      ) ||
      /\.(c|cc|cpp|h|hpp|gyp|gypi|ts|map)$/.test(f) ||
      /\/node_modules\/.*\/(test|tests|__tests__|examples?|benchmarks?)(\/|$)/.test(f),
  );
  assert.deepEqual(tooling.slice(0, 10), [], 'build tooling, sources or tests in the payload');
  const [size] = await rpmQuery('--qf', '%{SIZE}\\n');
  process.stdout.write(`payload: ${files.size} files, ${(Number(size) / 1e6).toFixed(2)} MB installed\n`);
  // Measured: 324 files, 1.18 MB (was 2 649 files, 14.2 MB with usocket's node-gyp and cap's sources).
  assert.ok(files.size < 600, `${files.size} files`);
  assert.ok(Number(size) < 4e6, `${size} bytes`);

  const docs = await rpmQuery('-d');
  assert.ok(docs.includes('/usr/share/doc/knockd/README.md'), `%doc: ${docs.join(', ')}`);
  assert.ok(
    docs.some((d) => d.startsWith('/usr/share/man/man8/knockd.8')),
    'man page marked as doc',
  );
  const licenses = await rpmQuery('-L');
  assert.deepEqual(licenses, ['/usr/share/licenses/knockd/LICENSE']);
});

test("the RPM requires nodejs >= 20 (and its ABI), firewalld and the libpcap cap.node was linked with here; conflicts with EPEL's knock", async () => {
  need(noRpm);
  const reqs = await rpmQuery('--requires');
  assert.ok(reqs.includes('nodejs >= 1:20'), `nodejs requirement (RHEL's nodejs has Epoch 1): ${reqs.join(' | ')}`);
  // The addon is built for this Node.js major only (nan, NODE_MODULE_VERSION).
  const nodeMajor = process.versions.node.split('.')[0];
  assert.ok(reqs.includes(`nodejs(abi${nodeMajor})`), `nodejs(abi${nodeMajor}): ${reqs.join(' | ')}`);
  assert.ok(reqs.includes('firewalld'), 'firewalld');
  // Built on this host: rpm's ELF generator names the libpcap soname of this host's libpcap
  // (libpcap.so.0.8 on Debian, libpcap.so.1 on RHEL), no patchelf.
  const ld = (await run('ldconfig', ['-p'])).stdout;
  const hostPcap = /\b(libpcap\.so\.[0-9.]+) \(libc6,x86-64\)/.exec(ld)?.[1];
  assert.ok(hostPcap, `no libpcap on this host:\n${ld}`);
  assert.ok(reqs.includes(`${hostPcap}()(64bit)`), `requires ${hostPcap}()(64bit): ${reqs.join(' | ')}`);
  assert.deepEqual(
    reqs.filter((r) => /^libpcap/.test(r)),
    [`${hostPcap}()(64bit)`],
  );
  // Nothing from inside node_modules (shebangs of bundled scripts), no provides but the package's own and its bundled modules.
  assert.deepEqual(
    reqs.filter((r) => /^\/(usr\/)?bin\/(bash|node|python)/.test(r)),
    [],
  );
  const provides = await rpmQuery('--provides');
  assert.deepEqual(
    provides.filter((p) => !/^(knockd|config\(knockd\)|knockd\(x86-64\)) = |^bundled\(nodejs-[^)]+\) = /.test(p)),
    [],
  );
  for (const m of ['cap', 'dbus-next', 'pino', 'xml2js'])
    assert.ok(
      provides.some((p) => p.startsWith(`bundled(nodejs-${m}) = `)),
      `bundled(nodejs-${m})`,
    );
  assert.ok(
    provides.some((p) => /^bundled\(nodejs-xml2js\) = 0\.([5-9]|\d\d)/.test(p)),
    'xml2js >= 0.5 (CVE-2023-0842)',
  );
  const conflicts = await rpmQuery('--conflicts');
  assert.deepEqual(conflicts.sort(), ['knock', 'knock-server']);
  assert.equal((await rpmQuery('--qf', '%{ARCH}\\n'))[0], 'x86_64');
});

test('/etc/knockd.conf and /etc/sysconfig/knockd are config files (and the config is root-only)', async () => {
  need(noRpm);
  const configs = await rpmQuery('--configfiles');
  for (const f of ['/etc/knockd.conf', '/etc/sysconfig/knockd', '/etc/logrotate.d/knockd'])
    assert.ok(configs.includes(f), `${f} in ${configs.join(', ')}`);
  // File flags: c = %config, n = noreplace; and the mode.
  const flags = new Map(
    (await rpmQuery('--qf', '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\\n]')).map((l) => {
      const [name, fl, mode] = l.split(' ');
      return [name, { fl: fl, mode: mode }];
    }),
  );
  for (const f of ['/etc/knockd.conf', '/etc/sysconfig/knockd', '/etc/logrotate.d/knockd'])
    assert.equal(flags.get(f)?.fl, 'cn', `${f} is %config(noreplace)`);
  assert.equal(flags.get('/etc/knockd.conf')?.mode, '-rw-------', 'knock sequences are secrets: 0600');
  assert.equal(flags.get('/etc/sysconfig/knockd')?.mode, '-rw-r--r--');
});

test('the scriptlets use the systemd macros (or their fallbacks)', async () => {
  need(noRpm);
  const scripts = (await run('rpm', ['-qp', '--scripts', built()])).stdout;
  assert.match(
    scripts,
    /preinstall scriptlet[\s\S]*knockd/,
    'the capture user (knockd.sysusers) is created before install',
  );
  assert.match(scripts, /postinstall scriptlet[\s\S]*knockd\.service/);
  assert.match(scripts, /preuninstall scriptlet[\s\S]*knockd\.service/);
  assert.match(scripts, /postuninstall scriptlet[\s\S]*knockd\.service/);
});

test(
  'installed into a scratch root, the app runs: --version, --check, knock --version',
  { timeout: 120_000 },
  async () => {
    need(noRpm);
    root = await tmp('knockd-rpmroot-');
    let r = await run('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '--initdb']);
    assert.equal(r.code, 0, `rpm --initdb: ${r.stderr}`);
    r = await run('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '--nodeps', '--noscripts', '-i', built()]);
    assert.equal(r.code, 0, `rpm -i: ${r.stderr}`);
    r = await run('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '-q', 'knockd']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^knockd-/);

    // Launchers hard-code /usr/lib/knockd.
    assert.equal(
      await readFile(join(root, 'usr/sbin/knockd'), 'utf8'),
      `#!/bin/sh\nexec /usr/bin/node ${APPDIR}/bin/knockd "$@"\n`,
    );
    assert.equal(
      await readFile(join(root, 'usr/bin/knock'), 'utf8'),
      `#!/bin/sh\nexec /usr/bin/node ${APPDIR}/bin/knock "$@"\n`,
    );

    // cap.node was compiled here (rpmbuild --rebuild), so it links this host's libpcap soname
    // and loads with no shim; nothing rewrote it (no patchelf).
    const neededLibs = async (addon: string): Promise<string[]> => {
      const dynamic = (
        await run('readelf', ['-d', join(root, APPDIR.slice(1), 'node_modules/cap/build/Release', addon)])
      ).stdout;
      return [...dynamic.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
    };
    const libs = await neededLibs('cap.node');
    const ld = (await run('ldconfig', ['-p'])).stdout;
    const pcapLibs = libs.filter((l) => l.startsWith('libpcap'));
    assert.equal(pcapLibs.length, 1, `cap.node NEEDs one libpcap: ${libs.join(', ')}`);
    assert.ok(ld.includes(`${pcapLibs[0]} (libc6,x86-64)`), `cap.node NEEDs ${pcapLibs[0]}, which this host has`);
    // The daemon's sd_notify addon links no libpcap: the daemon does not capture.
    const notifyLibs = await neededLibs('sdnotify.node');
    assert.ok(
      notifyLibs.length > 0 && notifyLibs.every((l) => /^(libc|libstdc\+\+|libm|libgcc_s)\.so/.test(l)),
      `sdnotify.node NEEDs ${notifyLibs.join(', ')}`,
    );

    const app = join(root, APPDIR.slice(1));
    r = await run(process.execPath, [join(app, 'bin/knockd'), '--version'], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^knockd ${PKG.version.replace(/\./g, '\\.')}\\b`));

    r = await run(process.execPath, [join(app, 'bin/knockd'), '--check', '-c', join(root, 'etc/knockd.conf')], {});
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /: OK\b/);

    r = await run(process.execPath, [join(app, 'bin/knock'), '--version'], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^knock ${PKG.version.replace(/\./g, '\\.')}\\b`));

    // Every runtime dependency loads from the installed tree; dbus-next without usocket.
    assert.ok(!existsSync(join(app, 'node_modules/usocket')), 'usocket is not installed');
    const mods = Object.keys(PKG.dependencies);
    r = await run(
      process.execPath,
      [
        '-e',
        `for (const m of ${JSON.stringify(mods)}) require(require.resolve(m, { paths: [${JSON.stringify(app)}] }));`,
      ],
      { cwd: app },
    );
    assert.equal(r.code, 0, `requiring ${mods.join(', ')}: ${r.stderr}`);

    // The installed config, unit and friends are the checkout's.
    assert.equal(
      await readFile(join(root, 'etc/knockd.conf'), 'utf8'),
      await readFile(join(REPO, 'knockd.conf'), 'utf8'),
    );
    assert.equal(
      await readFile(join(root, 'etc/sysconfig/knockd'), 'utf8'),
      await readFile(join(REPO, 'knockd.sysconfig'), 'utf8'),
    );
    assert.equal(
      await readFile(join(root, 'usr/lib/systemd/system/knockd.service'), 'utf8'),
      await readFile(join(REPO, 'packaging/knockd.service'), 'utf8'),
    );
  },
);

// ---------------------------------------------------------------------------
// Next to EPEL's knock and knock-server
// ---------------------------------------------------------------------------

/** A stand-in for EPEL's knock (client) and knock-server (knockd 0.8): the same paths, nothing else. */
const STANDIN_SPEC = `
Name: knock
Version: 0.8
Release: 99.standin
Summary: Stand-in for EPEL's knock (test only)
License: GPL-2.0-or-later
BuildArch: noarch
%description
Owns the paths EPEL's knock owns.
%package server
Summary: Stand-in for EPEL's knock-server (test only)
%description server
Owns the paths EPEL's knock-server owns.
%install
for f in /usr/bin/knock /usr/sbin/knockd; do install -D -m 0755 /dev/null %{buildroot}$f; printf '#!/bin/sh\\necho knockd 0.8 stand-in\\n' > %{buildroot}$f; done
install -D -m 0600 /dev/null %{buildroot}/etc/knockd.conf
printf '[options]\\n\\tUseSyslog\\n[openSSH]\\n\\tsequence = 7000,8000,9000\\n' > %{buildroot}/etc/knockd.conf
install -D -m 0644 /dev/null %{buildroot}/etc/sysconfig/knockd
printf 'OPTIONS="-i eth0"\\n' > %{buildroot}/etc/sysconfig/knockd
install -D -m 0644 /dev/null %{buildroot}/usr/lib/systemd/system/knockd.service
printf '[Service]\\nExecStart=/usr/sbin/knockd\\n' > %{buildroot}/usr/lib/systemd/system/knockd.service
for m in man1/knock.1 man8/knockd.8; do install -d %{buildroot}/usr/share/man/\${m%/*}; echo .TH > %{buildroot}/usr/share/man/$m; gzip -9n %{buildroot}/usr/share/man/$m; done
%files
/usr/bin/knock
/usr/share/man/man1/knock.1.gz
%files server
/usr/sbin/knockd
%config(noreplace) /etc/knockd.conf
%config(noreplace) /etc/sysconfig/knockd
/usr/lib/systemd/system/knockd.service
/usr/share/man/man8/knockd.8.gz
`;

/** What an admin of knockd 0.8 has in /etc/knockd.conf: the CentOS tutorial's door, with a knockd 0.8 command line. */
const TUTORIAL_CONF = `[options]
    UseSyslog

[openSSH]
    sequence    = 7000,8000,9000
    seq_timeout = 5
    command     = /bin/firewall-cmd --zone=public --add-rich-rule="rule family='ipv4' source address='%IP%' service name='ssh' accept"; logger -t knockd "ssh opened for %IP%"
    tcpflags    = syn

[closeSSH]
    sequence    = 9000,8000,7000
    seq_timeout = 5
    command     = /bin/firewall-cmd --zone=public --remove-rich-rule="rule family='ipv4' source address='%IP%' service name='ssh' accept"
    tcpflags    = syn
`;

test(
  "next to EPEL's knock-server and knock (stand-ins owning the same paths) the RPM is refused; after rpm -e the admin's config is in .rpmsave and works as it is; one left in place is kept (.rpmnew)",
  { timeout: 120_000 },
  async () => {
    need(noRpm);
    built();
    const top = await tmp('knockd-standin-');
    await mkdir(join(top, 'SPECS'), { recursive: true });
    await writeFile(join(top, 'SPECS/knock.spec'), STANDIN_SPEC);
    let r = await run('rpmbuild', ['-bb', '--define', `_topdir ${top}`, join(top, 'SPECS/knock.spec')]);
    assert.equal(r.code, 0, `stand-in build: ${tail(r.stderr)}`);
    const standins = (await run('bash', ['-c', `ls ${top}/RPMS/noarch/knock-*.rpm`])).stdout.trim().split('\n');
    assert.equal(standins.length, 2, standins.join(', '));

    const sroot = await tmp('knockd-swaproot-');
    const rpmIn = (...a: string[]): Promise<Run> => run('rpm', ['--root', sroot, '--dbpath', '/var/lib/rpm', ...a]);
    assert.equal((await rpmIn('--initdb')).code, 0);
    r = await rpmIn('-i', '--nodeps', '--noscripts', ...standins);
    assert.equal(r.code, 0, `installing the stand-ins: ${r.stderr}`);
    await writeFile(join(sroot, 'etc/knockd.conf'), TUTORIAL_CONF, { mode: 0o600 }); // the admin's doors

    // The dependency check refuses it by name (Conflicts:) ...
    r = await rpmIn('-i', '--noscripts', built());
    assert.notEqual(r.code, 0, 'installed next to knock-server');
    assert.match(
      r.stderr,
      /knock-server conflicts with knockd-|knockd-\S+ conflicts with knock-server|knock-server is in conflict/i,
      r.stderr,
    );
    assert.match(r.stderr, /\bknock conflicts with knockd-|knockd-\S+ conflicts with knock\b(?!-)/, r.stderr);
    // ... and, with the dependency check off, the files still collide.
    r = await rpmIn('-i', '--nodeps', '--noscripts', built());
    assert.notEqual(r.code, 0, "installed over knock-server's files with --nodeps");
    for (const f of [
      '/usr/sbin/knockd',
      '/usr/bin/knock',
      '/usr/lib/systemd/system/knockd.service',
      '/etc/knockd.conf',
    ]) {
      assert.match(
        r.stderr,
        new RegExp(`file ${f} from install of knockd-\\S+ conflicts with file from package knock(-server)?-0\\.8`),
        `${f}: ${r.stderr}`,
      );
    }
    assert.equal(
      await readFile(join(sroot, 'usr/sbin/knockd'), 'utf8'),
      '#!/bin/sh\necho knockd 0.8 stand-in\n',
      'nothing was replaced',
    );

    // The switch (README): remove, keeping the modified config as .rpmsave, then install ours.
    r = await rpmIn('-e', '--noscripts', 'knock-server', 'knock');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\/etc\/knockd\.conf saved as \/etc\/knockd\.conf\.rpmsave/, r.stderr);
    assert.equal(await readFile(join(sroot, 'etc/knockd.conf.rpmsave'), 'utf8'), TUTORIAL_CONF);
    r = await rpmIn('-i', '--nodeps', '--noscripts', built());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      await readFile(join(sroot, 'etc/knockd.conf'), 'utf8'),
      await readFile(join(REPO, 'knockd.conf'), 'utf8'),
      'a fresh install lays our seed config',
    );
    // The admin's knockd 0.8 config is accepted as it is (a ';' in a command is data).
    const app = join(sroot, APPDIR.slice(1));
    r = await run(process.execPath, [join(app, 'bin/knockd'), '--check', '-c', join(sroot, 'etc/knockd.conf.rpmsave')]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /: OK\b/);

    // An edited /etc/knockd.conf still in place at install (owned by no package): kept, ours goes to .rpmnew.
    const kroot = await tmp('knockd-keeproot-');
    const rpmK = (...a: string[]): Promise<Run> => run('rpm', ['--root', kroot, '--dbpath', '/var/lib/rpm', ...a]);
    assert.equal((await rpmK('--initdb')).code, 0);
    await mkdir(join(kroot, 'etc'));
    await writeFile(join(kroot, 'etc/knockd.conf'), TUTORIAL_CONF, { mode: 0o600 });
    r = await rpmK('-i', '--nodeps', '--noscripts', built());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\/etc\/knockd\.conf created as \/etc\/knockd\.conf\.rpmnew/, r.stderr);
    assert.equal(await readFile(join(kroot, 'etc/knockd.conf'), 'utf8'), TUTORIAL_CONF);
    assert.equal(
      await readFile(join(kroot, 'etc/knockd.conf.rpmnew'), 'utf8'),
      await readFile(join(REPO, 'knockd.conf'), 'utf8'),
    );
  },
);

// ---------------------------------------------------------------------------
// The unit
// ---------------------------------------------------------------------------

test('systemd-analyze verify accepts knockd.service', async () => {
  need(noAnalyze);
  // verify insists that ExecStart's binary exists and that Documentation=man:knockd(8)
  // resolves: use a copy whose ExecStart is this checkout's bin/knockd, and a MANPATH
  // holding our knockd.8.
  const dir = await tmp('knockd-unit-');
  const unit = (await readFile(join(REPO, 'packaging/knockd.service'), 'utf8')).replace(
    /^ExecStart=\/usr\/sbin\/knockd /m,
    `ExecStart=${join(REPO, 'bin/knockd')} `,
  );
  assert.match(unit, new RegExp(`^ExecStart=${join(REPO, 'bin/knockd')} \\$OPTIONS$`, 'm'));
  await writeFile(join(dir, 'knockd.service'), unit);
  await mkdir(join(dir, 'man/man8'), { recursive: true });
  await copyFile(join(REPO, 'packaging/knockd.8'), join(dir, 'man/man8/knockd.8'));
  const r = await run('systemd-analyze', ['verify', join(dir, 'knockd.service')], {
    env: { ...process.env, MANPATH: join(dir, 'man') },
  });
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.equal(r.stderr.trim(), '', 'no warnings');
});

test('knockd.service has the settings the daemon relies on', async () => {
  const unit = await readFile(join(REPO, 'packaging/knockd.service'), 'utf8');
  for (const line of [
    'Type=notify',
    'NotifyAccess=main',
    'IPAddressDeny=any',
    'EnvironmentFile=-/etc/sysconfig/knockd',
    'ExecStart=/usr/sbin/knockd $OPTIONS',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'After=network-online.target firewalld.service',
    'Wants=network-online.target',
    'Documentation=man:knockd(8)',
    'Restart=on-failure',
    'WantedBy=multi-user.target',
    'RuntimeDirectory=knockd',
    'StateDirectory=knockd',
    'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_PACKET AF_INET AF_INET6',
  ]) {
    assert.ok(unit.split('\n').includes(line), `missing "${line}"`);
  }
  // V8's JIT needs W+X memory.
  assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=(yes|true|1)/m);
  const caps = /^CapabilityBoundingSet=(.*)$/m.exec(unit)?.[1]?.split(/\s+/).sort();
  assert.deepEqual(caps, ['CAP_KILL', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID']);
});

// 2.3 before CAP_KILL (issue 18.8: ending a stuck capture process of another uid), which costs 0.1.
test('systemd-analyze security rates knockd.service at most 2.4', async () => {
  need(noAnalyze);
  const r = await run('systemd-analyze', [
    'security',
    '--offline=true',
    '--no-pager',
    join(REPO, 'packaging/knockd.service'),
  ]);
  const m = /Overall exposure level for knockd\.service: (\d+(?:\.\d+)?)/.exec(r.stdout);
  assert.ok(m, `no overall exposure line:\n${r.stdout}${r.stderr}`);
  const score = Number(m[1]);
  const worst = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('✗'))
    .map((l) => ({ l: l.replace(/\s{2,}.*?\s{2,}/, ' ').trim(), w: Number(/(\d+\.\d+)\s*$/.exec(l)?.[1] ?? 0) }))
    .sort((a, b) => b.w - a.w)
    .slice(0, 5)
    .map((x) => x.l);
  process.stdout.write(`knockd.service exposure ${score}; top remaining: ${worst.join('; ')}\n`);
  assert.ok(score <= 2.4, `exposure ${score} > 2.4`);
});

/** Every system call in a systemd filter set (or a single call name), groups expanded. */
async function expandSyscalls(item: string, seen = new Set<string>()): Promise<Set<string>> {
  if (!item.startsWith('@')) return new Set([item]);
  const out = new Set<string>();
  if (seen.has(item)) return out;
  seen.add(item);
  const r = await run('systemd-analyze', ['syscall-filter', '--no-pager', item]);
  assert.equal(r.code, 0, r.stderr);
  for (const line of r.stdout.split('\n').slice(1)) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    for (const n of await expandSyscalls(l, seen)) out.add(n);
  }
  return out;
}

const SECCOMP_PY = `
import os, sys, seccomp
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(1))  # SystemCallErrorNumber=EPERM
for name in open(sys.argv[1]).read().split():
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call on this architecture
f.load()
os.execvp(sys.argv[2], sys.argv[2:])
`;

test(
  "the daemon captures knocks under the unit's system call filter and capability bounding set",
  { timeout: 120_000 },
  async () => {
    need(
      process.getuid?.() !== 0
        ? 'needs root'
        : !have('systemd-analyze') || !have('unshare') || !have('setpriv') || !have('python3') || !have('ip')
          ? 'needs systemd-analyze, unshare, setpriv, python3, ip'
          : false,
    );
    const pyEnv = { ...process.env, PYTHONPATH: '/usr/lib/python3/dist-packages' };
    if ((await run('python3', ['-c', 'import seccomp'], { env: pyEnv })).code !== 0) {
      throw new Error(
        'python3 seccomp bindings missing (Debian: apt-get install python3-seccomp; scripts/setup.sh does)',
      );
    }
    const unit = await readFile(join(REPO, 'packaging/knockd.service'), 'utf8');
    // SystemCallFilter=: the first line is an allow list, "~" lines take away.
    const allowed = new Set<string>();
    for (const m of unit.matchAll(/^SystemCallFilter=(~?)(.*)$/gm)) {
      for (const item of m[2].trim().split(/\s+/)) {
        for (const n of await expandSyscalls(item)) {
          if (m[1] === '~') allowed.delete(n);
          else allowed.add(n);
        }
      }
    }
    assert.ok(
      allowed.size > 100 && !allowed.has('init_module') && !allowed.has('setrlimit'),
      `filter: ${allowed.size} calls`,
    );
    assert.match(unit, /^SystemCallErrorNumber=EPERM$/m);
    const caps = /^CapabilityBoundingSet=(.*)$/m
      .exec(unit)![1]
      .trim()
      .split(/\s+/)
      .map((c) => c.replace(/^CAP_/, '').toLowerCase());

    const dir = await tmp('knockd-sandbox-');
    await writeFile(join(dir, 'allowed.txt'), [...allowed].join('\n'));
    await writeFile(join(dir, 'sandbox-exec.py'), SECCOMP_PY);
    const log = join(dir, 'knockd.log');
    await writeFile(
      join(dir, 'knockd.conf'),
      `[options]\n    LogFile = ${log}\n[sandboxDoor]\n    Sequence      = 7001,7002:udp,7003\n    Seq_Timeout   = 10\n    TCPFlags      = syn\n    Start_Command = /bin/true %IP%\n`,
    );
    // The packaged app when the RPM test ran, else this checkout's.
    const appRoot = root ? join(root, APPDIR.slice(1)) : REPO;
    const knockd = join(appRoot, 'bin/knockd');
    const knock = join(appRoot, 'bin/knock');
    // In a network namespace of our own: 10.77.0.1 on lo, knocked from the same namespace.
    const script = `
set -u
ip link set lo up
ip addr add 10.77.0.1/8 dev lo
umask 077
setpriv --no-new-privs --bounding-set -all,${caps.map((c) => `+${c}`).join(',')} --inh-caps=-all \\
  python3 ${dir}/sandbox-exec.py ${dir}/allowed.txt ${process.execPath} ${knockd} -i lo -c ${dir}/knockd.conf > ${dir}/out 2>&1 &
D=$!
for i in $(seq 100); do grep -q 'listening on lo' ${dir}/out 2>/dev/null && break; sleep 0.1; done
${process.execPath} ${knock} 10.77.0.1 7001 7002:udp 7003
for i in $(seq 50); do grep -q 'OPEN SESAME' ${log} 2>/dev/null && break; sleep 0.1; done
kill -HUP $D; sleep 0.5; kill -USR1 $D; sleep 0.5; kill -TERM $D
wait $D; echo "exit=$?"
`;
    const r = await run('unshare', ['-n', 'bash', '-c', script], {
      env: { ...process.env, PYTHONPATH: pyEnv.PYTHONPATH },
      timeout: 60_000,
    });
    const out = await readFile(join(dir, 'out'), 'utf8').catch(() => '');
    const logText = await readFile(log, 'utf8').catch(() => '');
    const why = `\n--- script ---\n${r.stdout}${r.stderr}\n--- daemon ---\n${out}\n--- log ---\n${logText}`;
    assert.match(r.stdout, /exit=0/, `clean exit on SIGTERM${why}`);
    assert.match(logText, /10\.77\.0\.1: sandboxDoor: Stage 3/, why);
    assert.match(logText, /10\.77\.0\.1: sandboxDoor: OPEN SESAME/, why);
    assert.match(logText, /re-reading config file/, why);
    assert.match(logText, /log file reopened \(SIGUSR1\)/, why);
    assert.doesNotMatch(out + logText, /Operation not permitted|EPERM|Bad system call/, why);
    const { mode } = statSync(log);
    assert.equal(mode & 0o777, 0o600, 'UMask=0077: the log file is root-only');
  },
);

// ---------------------------------------------------------------------------
// Man pages, D-Bus policy
// ---------------------------------------------------------------------------

test('man pages render without groff warnings', async () => {
  need(!have('groff') ? 'groff not installed' : false);
  for (const page of ['knockd.8', 'knock.1']) {
    const r = await run('groff', ['-man', '-Tutf8', '-ww', '-z', join(REPO, 'packaging', page)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', `${page}: ${r.stderr}`);
  }
  const r = await run('groff', ['-man', '-Tascii', '-P-cbou', join(REPO, 'packaging/knockd.8')]);
  for (const word of [
    '--interface',
    '--max-attempts',
    '--log-format',
    'firewalld_action',
    'One_Time_Sequences',
    'SIGUSR1',
    '/etc/sysconfig/knockd',
  ]) {
    assert.ok(r.stdout.includes(word), `knockd.8 mentions ${word}`);
  }
});

test('D-Bus policy: root may own and call org.knockd.Knockd1, other users may not', { timeout: 30_000 }, async () => {
  need(
    !have('dbus-daemon') || !have('dbus-send')
      ? 'dbus-daemon/dbus-send not installed'
      : process.getuid?.() !== 0
        ? 'needs root'
        : false,
  );
  const dir = await tmp('knockd-dbus-');
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'system.d'));
  await copyFile(join(REPO, 'packaging/org.knockd.Knockd1.conf'), join(dir, 'system.d/org.knockd.Knockd1.conf'));
  const socket = join(dir, 'bus');
  // The system bus's own defaults (as in dbus's system.conf): deny owning and calling, allow the bus driver.
  await writeFile(
    join(dir, 'bus.conf'),
    systemBusConfig(socket, { includeDirs: [join(dir, 'system.d')], rootMayDoAnything: false }),
  );
  const bus = spawn('dbus-daemon', ['--config-file', join(dir, 'bus.conf'), '--nofork', '--print-address'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  bus.stderr.on('data', (c: Buffer) => (err += c.toString()));
  try {
    await new Promise<void>((res, rej) => {
      bus.stdout.once('data', () => res());
      bus.once('exit', (code) => rej(new Error(`dbus-daemon exited (${code}): ${err}`)));
    });
    const address = `unix:path=${socket}`;
    const requestName = [
      '--bus=' + address,
      '--print-reply',
      '--dest=org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus.RequestName',
      'string:org.knockd.Knockd1',
      'uint32:0',
    ];
    const asNobody = (args: string[]): Promise<Run> =>
      run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'dbus-send', ...args]);

    let r = await asNobody(requestName);
    assert.notEqual(r.code, 0, 'nobody must not own org.knockd.Knockd1');
    assert.match(r.stderr, /AccessDenied/, r.stderr);

    // Root owns the name (1: DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) and holds it while we call it.
    const owner = dbus.sessionBus({ busAddress: address });
    try {
      assert.equal(await owner.requestName('org.knockd.Knockd1', 0), 1, 'root may own the name');
      const ping = [
        '--bus=' + address,
        '--print-reply',
        '--dest=org.knockd.Knockd1',
        '/org/knockd/Knockd1',
        'org.freedesktop.DBus.Peer.Ping',
      ];
      r = await run('dbus-send', ping);
      assert.doesNotMatch(r.stderr, /AccessDenied|ServiceUnknown/, `root may call the daemon: ${r.stderr}`);
      r = await asNobody(ping);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /AccessDenied/, `nobody may not call the daemon: ${r.stderr}`);
    } finally {
      owner.disconnect();
    }
  } finally {
    bus.kill();
  }
});
