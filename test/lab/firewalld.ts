/**
 * firewalld in the lab's server namespace: the host's, or a Debian release's
 * chrooted into an overlay of its cached root (fw-chroot.sh); its private
 * configuration; the zone setup every lab starts from.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { FW_CHROOT_SCRIPT, type FwRoot } from './fw-roots';
import { sleep, tailFile, type Managed, type Procs } from './proc';
import type { ExecOptions, ExecResult } from './types';

const FIREWALLD_START_TIMEOUT_MS = 30_000;
export const FIREWALLD_STOP_TIMEOUT_MS = 10_000;

/** Our own firewalld.conf for the private --system-config dir (Debian 12 defaults). */
const FIREWALLD_CONF = `# knlab private firewalld configuration (runtime-only test instance)
DefaultZone=public
CleanupOnExit=yes
CleanupModulesOnExit=no
Lockdown=no
IPv6_rpfilter=yes
IndividualCalls=no
LogDenied=off
FirewallBackend=nftables
FlushAllOnReload=yes
RFC3964_IPv4=yes
`;

/**
 * A release's own firewalld.conf with the lab's settings (FIREWALLD_CONF) for
 * every key the file names (set or commented out); keys a release does not
 * know are not added.
 */
export function releaseFirewalldConf(own: string): string {
  let out = own;
  for (const line of FIREWALLD_CONF.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (!m) continue;
    const re = new RegExp(`^[ \\t#]*${m[1]}=.*$`, 'm');
    if (re.test(out)) out = out.replace(re, line);
  }
  return `# knlab: the release's own firewalld.conf, the lab's settings for the keys it names\n${out}`;
}

/**
 * The private copy of /etc/firewalld that firewalld sees (bind-mounted over
 * /etc/firewalld in a mount namespace of its own): the host's files, then
 * our firewalld.conf. A `--permanent` change in a test lands here, never in
 * the host's configuration. Kept across restarts of firewalld within a lab.
 */
export async function writeFirewalldConfig(tmpDir: string, fwRoot: FwRoot | undefined): Promise<string> {
  const dir = path.join(tmpDir, 'firewalld-etc');
  const src = fwRoot ? path.join(fwRoot.path, 'etc/firewalld') : '/etc/firewalld';
  if (!fs.existsSync(dir) && fs.existsSync(src)) await fsp.cp(src, dir, { recursive: true });
  for (const sub of ['zones', 'services', 'icmptypes', 'ipsets', 'helpers', 'policies']) {
    await fsp.mkdir(path.join(dir, sub), { recursive: true });
  }
  const conf = path.join(dir, 'firewalld.conf');
  if (!fs.existsSync(path.join(dir, '.knlab'))) {
    // A release keeps its own Debian defaults, with the lab's settings for the keys it knows.
    const own = fwRoot ? await fsp.readFile(conf, 'utf8').catch(() => '') : '';
    await fsp.writeFile(conf, fwRoot ? releaseFirewalldConf(own) : FIREWALLD_CONF);
    await fsp.writeFile(path.join(dir, '.knlab'), 'private copy of /etc/firewalld for one lab\n');
  }
  return dir;
}

/** The lab bus as a release root sees it (fw-chroot.sh binds the lab dir at /run/knlab). */
export const IN_ROOT_BUS = 'unix:path=/run/knlab/bus.sock';

/**
 * `argv` chrooted into `fwRoot` (fw-chroot.sh) in a private mount namespace:
 * MODE 'ro' for clients (firewall-cmd), 'rw:DIR' for firewalld itself. The
 * host's firewalld: `argv` unchanged.
 */
export function inRoot(fwRoot: FwRoot | undefined, tmpDir: string, argv: string[], mode: string, etc = '-'): string[] {
  if (!fwRoot) return argv;
  const chroot = ['bash', FW_CHROOT_SCRIPT, fwRoot.path, tmpDir, mode, etc, '--'];
  return ['unshare', '--mount', '--propagation', 'private', '--', ...chroot, ...argv];
}

/** What startFirewalld() needs of its lab. */
export interface FirewalldSite {
  procs: Procs;
  serverNs: string;
  tmpDir: string;
  /** The interfaces that go to zone public. */
  serverIfs: string[];
  fwRoot: FwRoot | undefined;
  debug: number | undefined;
  /** A command in the server namespace (firewall-cmd is the running release's). */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  firewallCmd(...args: string[]): Promise<string>;
}

/**
 * Start firewalld (start number `n` of this lab: a fresh overlay each time),
 * wait until `firewall-cmd --state` says running, then the zone setup: the
 * server interfaces in public, no ssh service. Resolves the process and the
 * version its firewall-cmd prints.
 */
export async function startFirewalld(s: FirewalldSite, n: number): Promise<{ proc: Managed; version: string }> {
  const etc = await writeFirewalldConfig(s.tmpDir, s.fwRoot);
  const logFile = path.join(s.tmpDir, 'firewalld.log');
  const consoleLog = path.join(s.tmpDir, 'firewalld.console.log');
  // Its own mount namespace (private propagation) with the lab's copy bind-mounted over /etc/firewalld:
  // firewalld reads and writes /etc/firewalld as on a real server, and the host's stays untouched.
  // A release's firewalld runs chrooted into a fresh overlay of its root (fw-chroot.sh), where the lab
  // dir is /run/knlab; 0.9 has no --log-target (it logs to --log-file and syslog, absent there).
  const fwArgs = ['--nofork', '--nopid'];
  if (!s.fwRoot || !s.fwRoot.version.startsWith('0.')) fwArgs.push('--log-target', 'file');
  fwArgs.push('--log-file', s.fwRoot ? '/run/knlab/firewalld.log' : logFile);
  if (s.debug !== undefined) fwArgs.push(`--debug=${s.debug}`);
  const argv = s.fwRoot
    ? inRoot(s.fwRoot, s.tmpDir, ['firewalld', ...fwArgs], `rw:${path.join(s.tmpDir, `fwroot-${n}`)}`, etc)
    : ['unshare', '--mount', '--propagation', 'private', '--']
        .concat(['sh', '-c', 'mount --bind "$0" /etc/firewalld && exec "$@"', etc])
        .concat(['firewalld', ...fwArgs]);
  const m = s.procs.start(s.serverNs, 'server', 'firewalld', argv, consoleLog);
  const t0 = Date.now();
  const failure = (why: string): Error =>
    new Error(
      `firewalld ${why}\n--- firewalld.log (tail) ---\n${tailFile(logFile)}\n--- firewalld.console.log (tail) ---\n${tailFile(consoleLog)}`,
    );
  try {
    // Poll `firewall-cmd --state` (it exits 0 and prints "running" once the
    // daemon has finished its startup; exits non-zero while the name is
    // not yet on the bus).
    for (;;) {
      if (!s.procs.managed.has(m)) throw failure('exited during startup');
      const r = await s.exec(['firewall-cmd', '--state'], { timeoutMs: 10_000 });
      if (r.code === 0 && r.stdout.trim() === 'running') break;
      if (Date.now() - t0 > FIREWALLD_START_TIMEOUT_MS) {
        throw failure(
          `not running after ${FIREWALLD_START_TIMEOUT_MS} ms (last --state: ${(r.stdout + r.stderr).trim()})`,
        );
      }
      await sleep(100);
    }
    s.procs.log(`firewalld running after ${Date.now() - t0} ms`);
    const version = await s.firewallCmd('--version');
    for (const i of s.serverIfs) await s.firewallCmd('--zone=public', `--change-interface=${i}`);
    // Debian's public zone lists ssh; remove it (runtime only) so sshd is
    // reachable from the client only through rules the test adds.
    await s.firewallCmd('--zone=public', '--remove-service=ssh');
    const all = await s.firewallCmd('--zone=public', '--list-all');
    const field = (name: string): string[] => {
      const line = all.split('\n').find((l) => l.trim().startsWith(`${name}:`));
      return line
        ? line
            .trim()
            .slice(name.length + 1)
            .trim()
            .split(/\s+/)
            .filter((x) => x !== '')
        : [];
    };
    if (!s.serverIfs.every((i) => field('interfaces').includes(i)) || field('services').includes('ssh')) {
      throw failure(`zone setup did not take effect; --list-all:\n${all}`);
    }
    return { proc: m, version };
  } catch (e) {
    await s.procs.kill(m, FIREWALLD_STOP_TIMEOUT_MS);
    throw e;
  }
}
