/**
 * A machine booted with systemd as PID 1, for test/e2e/nspawn.test.ts:
 * `systemd-nspawn -b` on a Debian 12 root file system made by debootstrap
 * (test/lab/nspawn-rootfs.sh), with dbus, firewalld and sshd as its own
 * system services, in its own network namespace joined to the host by a veth
 * pair (`--network-veth`: host0 inside, ve-<name> outside).
 *
 * The root file system is built once and cached in
 * /var/cache/knockd-test/rootfs-<hash of nspawn-rootfs.sh>; a build holds
 * a lock (flock) and renames a finished tree into place, so concurrent runs
 * neither build it twice nor see half of it. Each machine boots an overlay of
 * it (its writes go to a directory of its own, removed at the end), with a
 * unique name per run. Commands run inside with `nsenter -t <PID 1> -a`: the
 * host need not run systemd (no machined, so no `machinectl`/`systemd-run -M`).
 *
 * The host's network and firewall are not touched: the container's firewalld
 * filters the container's namespace only; the host side of the veth gets a
 * test address and nothing else.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const REPO = resolve(__dirname, '..', '..', '..');
export const ROOTFS_SCRIPT = join(REPO, 'test', 'lab', 'nspawn-rootfs.sh');
export const CACHE_DIR = '/var/cache/knockd-test';
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(cmd: string, args: string[], timeout = 60_000): Promise<Run> {
  try {
    const r = await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout });
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The Debian mirror this machine's apt uses for bookworm (one-line .list or
 * deb822 .sources files); debootstrap fetches from the same one.
 */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d')) files.push(join('/etc/apt/sources.list.d', f));
  } catch {
    /* no directory */
  }
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    // One-line style: deb [options] URI bookworm main ...
    for (const m of text.matchAll(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s+.*\bmain\b/gm)) return m[1];
    // deb822 style: a stanza with Types: deb, Suites: ... bookworm ..., URIs: ...
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (k: string): string | undefined => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim();
      const types = field('Types')?.split(/\s+/) ?? [];
      const suites = field('Suites')?.split(/\s+/) ?? [];
      const uri = field('URIs')?.split(/\s+/)[0];
      if (types.includes('deb') && suites.includes('bookworm') && uri && /\bdebian\/?$/.test(uri)) return uri;
    }
  }
  return DEFAULT_MIRROR;
}

export interface Rootfs {
  path: string;
  /** Seconds spent building it in this call (0 when it was cached). */
  builtSeconds: number;
}

/** The cached root file system, built (under a lock) when missing. */
export async function ensureRootfs(): Promise<Rootfs> {
  const hash = createHash('sha256').update(readFileSync(ROOTFS_SCRIPT)).digest('hex').slice(0, 16);
  const path = join(CACHE_DIR, `rootfs-${hash}`);
  if (existsSync(join(path, 'usr/lib/systemd/systemd'))) return { path, builtSeconds: 0 };
  await mkdir(CACHE_DIR, { recursive: true });
  const t0 = Date.now();
  const mirror = debianMirror();
  // flock: one build at a time; the second run finds DEST built when it gets the lock.
  const r = await run(
    'flock',
    [`${path}.lock`, 'bash', '-c', `[ -d "$1" ] || bash "$2" "$1" "$3"`, 'build', path, ROOTFS_SCRIPT, mirror],
    1_500_000,
  );
  if (r.code !== 0 || !existsSync(join(path, 'usr/lib/systemd/systemd'))) {
    throw new Error(
      `building the container root file system from ${mirror} failed (exit ${r.code}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`,
    );
  }
  return { path, builtSeconds: (Date.now() - t0) / 1000 };
}

export interface MachineOptions {
  /** Read-only binds into the container (host path = container path). */
  bindRo?: string[];
}

/** A systemd-booted container on an overlay of the cached root file system. */
export class Machine {
  readonly name: string;
  /** The host side of the veth pair. */
  readonly hostIf: string;
  readonly runDir: string;
  private nspawn: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private leaderPid = 0;
  private boots = 0;
  private mounted = false;

  constructor(
    readonly rootfs: string,
    private readonly opts: MachineOptions = {},
  ) {
    // ve-<name> must fit in 15 characters.
    this.name = `kd${randomBytes(4).toString('hex')}`;
    this.hostIf = `ve-${this.name}`;
    this.runDir = `/tmp/knockd-nspawn-${this.name}`;
    live.add(this);
  }

  get root(): string {
    return join(this.runDir, 'root');
  }

  get leader(): number {
    return this.leaderPid;
  }

  consoleLog(): string {
    try {
      return readFileSync(join(this.runDir, `console-${this.boots}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Boot (again, on the same overlay: what the last boot wrote is still there).
   * Returns when start-up is over (`systemctl is-system-running --wait`), or,
   * with `units`, as soon as those units are active: a Type=notify unit that
   * is still starting keeps the whole boot "starting".
   */
  async boot(opts: { units?: string[]; timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 90_000;
    if (!this.mounted) {
      for (const d of ['upper', 'work', 'root']) await mkdir(join(this.runDir, d), { recursive: true });
      const m = await run('mount', [
        '-t',
        'overlay',
        'overlay',
        '-o',
        `lowerdir=${this.rootfs},upperdir=${this.runDir}/upper,workdir=${this.runDir}/work`,
        this.root,
      ]);
      if (m.code !== 0) throw new Error(`overlay mount: ${m.stderr}`);
      this.mounted = true;
    }
    this.boots++;
    const args = [
      '--quiet',
      '-D',
      this.root,
      '-M',
      this.name,
      '-b',
      '--network-veth',
      // What RHEL 9's systemd has: BPF for IPAddressDeny= and friends (with the unified hierarchy below).
      '--capability=CAP_BPF',
      '--system-call-filter=bpf',
      // No machined/systemd on the host side: do not register, stay in our own cgroup.
      '--register=no',
      '--keep-unit',
      '--link-journal=no',
      '--console=passive',
      ...(this.opts.bindRo ?? []).map((p) => `--bind-ro=${p}`),
    ];
    const out = createWriteStream(join(this.runDir, `console-${this.boots}.log`));
    // The unified cgroup hierarchy (cgroup v2 only), as on RHEL 9, even on a host that mounts v1 and v2 side by side:
    // systemd applies IPAddressDeny= only there.
    const env = { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' };
    const child = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    // Both into one file: neither may end it (the second would write after its end); the child's close does.
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.once('close', () => out.end());
    this.nspawn = child;
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.exited.then((c) => (exitCode = c));
    // PID 1 of the container: nspawn's child, once it runs systemd.
    for (;;) {
      if (exitCode !== undefined)
        throw new Error(`systemd-nspawn exited (${exitCode}) before booting:\n${this.consoleLog()}`);
      if (Date.now() > deadline)
        throw new Error(`no systemd in the container after ${timeoutMs} ms:\n${this.consoleLog()}`);
      const pid = this.childOf(child.pid!);
      if (pid && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') {
        this.leaderPid = pid;
        break;
      }
      await sleep(100);
    }
    if (opts.units) {
      for (;;) {
        const r = await this.exec(['systemctl', 'is-active', ...opts.units]);
        if (r.code === 0) return;
        if (Date.now() > deadline)
          throw new Error(
            `${opts.units.join(', ')} not active after ${timeoutMs} ms: ${r.stdout}\n${this.consoleLog()}`,
          );
        await sleep(200);
      }
    }
    // Booted: is-system-running --wait returns once start-up is over (running or degraded).
    for (;;) {
      const r = await this.exec(['systemctl', 'is-system-running', '--wait'], Math.max(1000, deadline - Date.now()));
      const state = r.stdout.trim();
      if (state === 'running') return;
      if (state === 'degraded') {
        const failed = await this.exec(['systemctl', '--failed', '--no-pager', '--plain']);
        throw new Error(`the container booted degraded:\n${failed.stdout}\n${this.consoleLog()}`);
      }
      if (Date.now() > deadline)
        throw new Error(`the container did not finish booting (${state}):\n${this.consoleLog()}`);
      await sleep(200);
    }
  }

  private childOf(pid: number): number {
    try {
      const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      return kids.length ? Number(kids[0]) : 0;
    } catch {
      return 0;
    }
  }

  /** Run a command inside (all of PID 1's namespaces). */
  exec(args: string[], timeout = 60_000): Promise<Run> {
    if (!this.leaderPid) throw new Error('machine not booted');
    return run('nsenter', ['-t', String(this.leaderPid), '-a', ...args], timeout);
  }

  /** Like exec, but a non-zero exit throws with the output. */
  async sh(script: string, timeout = 60_000): Promise<string> {
    const r = await this.exec(['sh', '-c', script], timeout);
    if (r.code !== 0) throw new Error(`in ${this.name}: ${script}\nexit ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** A clean shutdown (SIGTERM to nspawn makes the container's systemd power off), SIGKILL if it hangs. */
  async poweroff(timeoutMs = 30_000): Promise<void> {
    const child = this.nspawn;
    if (!child || !this.exited) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await this.exited;
      }
    }
    this.nspawn = undefined;
    this.leaderPid = 0;
  }

  /** Power off, unmount the overlay and remove this machine's directory. */
  async destroy(): Promise<void> {
    await this.poweroff();
    if (this.mounted) {
      const u = await run('umount', [this.root]);
      if (u.code !== 0) await run('umount', ['-l', this.root]);
      this.mounted = false;
    }
    await rm(this.runDir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Synchronous last resort at process exit (a test that threw before its after hook). */
  destroySync(): void {
    try {
      if (this.nspawn?.pid) process.kill(this.nspawn.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    try {
      if (this.mounted) execFileSync('umount', ['-l', this.root], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    try {
      execFileSync('rm', ['-rf', this.runDir], { stdio: 'ignore' });
    } catch {
      /* best effort */
    }
  }

  async readFile(path: string): Promise<string> {
    return readFile(join(this.root, path), 'utf8');
  }
}

const live = new Set<Machine>();
process.once('exit', () => {
  for (const m of live) m.destroySync();
});
