/**
 * One running lab (test/lab/lab.ts builds it with startLab()): its names and
 * addresses, and the Lab methods, each handed to the module of its idea.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { startDbus } from './bus';
import { FIREWALLD_STOP_TIMEOUT_MS, IN_ROOT_BUS, inRoot, startFirewalld } from './firewalld';
import { rootPolicyDirs, type FwRoot } from './fw-roots';
import { release as releaseLab } from './hooks';
import { IP, Procs, describe, errMsg, waitFor, type Managed } from './proc';
import { NS_PREFIX, destroyNetnsSync, setupNetwork } from './netns';
import { bannerProbeArgv, startSshd } from './sshd';
import type { ExecOptions, ExecResult, Lab, LabNs, LabOptions, SshBannerOptions } from './types';

export class LabImpl implements Lab {
  readonly id: string;
  readonly tmpDir: string;
  readonly serverNs: string;
  readonly clientNs: string;
  readonly serverIf: string;
  readonly clientIf: string;
  readonly serverAddr: string;
  readonly clientAddr: string;
  readonly serverAddr6: string;
  readonly clientAddr6: string;
  readonly extraClientAddrs: string[];
  readonly serverIf2: string;
  readonly clientIf2: string;
  readonly serverAddr2: string;
  readonly clientAddr2: string;
  readonly prefix4 = 24;
  readonly prefix6 = 64;
  busAddress = '';
  readonly firewalldRelease: string;
  firewalldVersion = '';
  private dbusProc: Managed | undefined;
  private firewalldProc: Managed | undefined;
  private firewalldStarts = 0;
  private spawnCounter = 0;
  private stopping: Promise<void> | undefined;
  private readonly procs: Procs;
  private readonly ipv6: boolean;
  private readonly firewalldDebug: number | undefined;

  constructor(
    id: string,
    tmpDir: string,
    subnet: number,
    opts: LabOptions,
    release: string,
    /** The release root firewalld and firewall-cmd run from (undefined: the host's). */
    private readonly fwRoot: FwRoot | undefined,
  ) {
    const extra = opts.extraClientAddrs ?? 0;
    if (!Number.isInteger(extra) || extra < 0 || extra > 200) {
      throw new Error(`extraClientAddrs must be an integer in 0..200, got ${String(extra)}`);
    }
    this.ipv6 = opts.ipv6 ?? true;
    this.firewalldDebug = opts.firewalldDebug;
    const rand = id.split('-')[1] ?? '000000';
    this.id = id;
    this.tmpDir = tmpDir;
    this.procs = new Procs(path.join(tmpDir, 'lab.log'));
    this.serverNs = `${NS_PREFIX}${id}-s`;
    this.clientNs = `${NS_PREFIX}${id}-c`;
    this.serverIf = `ks${rand}`; // 8 chars, well below IFNAMSIZ-1 = 15
    this.clientIf = `kc${rand}`;
    this.serverAddr = `10.200.${subnet}.1`;
    this.clientAddr = `10.200.${subnet}.2`;
    this.extraClientAddrs = Array.from({ length: extra }, (_, i) => `10.200.${subnet}.${i + 3}`);
    const two = opts.secondLink ?? false;
    this.serverIf2 = two ? `ks${rand}b` : '';
    this.clientIf2 = two ? `kc${rand}b` : '';
    this.serverAddr2 = two ? `10.201.${subnet}.1` : '';
    this.clientAddr2 = two ? `10.201.${subnet}.2` : '';
    // subnet is 1..254, so this is the canonical (RFC 5952) spelling that
    // firewall-cmd echoes back in --list-rich-rules.
    const hex = subnet.toString(16);
    this.serverAddr6 = this.ipv6 ? `fd00:6b6e:${hex}::1` : '';
    this.clientAddr6 = this.ipv6 ? `fd00:6b6e:${hex}::2` : '';
    this.firewalldRelease = release;
  }

  get env(): NodeJS.ProcessEnv {
    return this.procs.env;
  }

  /** The server-side interfaces (one per veth pair). */
  private get serverIfs(): string[] {
    return this.serverIf2 ? [this.serverIf, this.serverIf2] : [this.serverIf];
  }

  /** The abstract socket of the lab bus (only visible inside the server network namespace). */
  private get abstractBus(): string {
    return `knlab-${this.id}`;
  }

  log(msg: string): void {
    this.procs.log(msg);
  }

  private nsName(ns: LabNs): string {
    if (ns === 'server') return this.serverNs;
    if (ns === 'client') return this.clientNs;
    throw new Error(`unknown namespace ${String(ns)} (expected 'server' or 'client')`);
  }

  private assertRunning(): void {
    if (this.stopping) throw new Error(`lab ${this.id} has been stopped`);
  }

  // ----- set-up ------------------------------------------------------------

  async setupNetwork(): Promise<void> {
    await setupNetwork(this.procs, this, this.ipv6);
  }

  async addServerAddress(cidr: string): Promise<void> {
    this.assertRunning();
    const dad = cidr.includes(':') ? ['nodad'] : [];
    await this.procs.mustRun([IP, '-n', this.serverNs, 'addr', 'add', cidr, 'dev', this.serverIf, ...dad]);
  }

  async delServerAddress(cidr: string): Promise<void> {
    this.assertRunning();
    await this.procs.mustRun([IP, '-n', this.serverNs, 'addr', 'del', cidr, 'dev', this.serverIf]);
  }

  async startDbus(): Promise<void> {
    // firewalld's bus policy (FirewallD.conf) is the running release's.
    const policies = this.fwRoot ? rootPolicyDirs(this.fwRoot.path) : ['/usr/share/dbus-1/system.d'];
    const bus = await startDbus(this.procs, this.serverNs, this.tmpDir, this.abstractBus, policies);
    this.dbusProc = bus.proc;
    this.busAddress = bus.address;
    this.procs.env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: this.busAddress };
  }

  async startSshd(): Promise<void> {
    await startSshd(this.procs, this.serverNs, this.tmpDir, this.id, this.ipv6);
  }

  // ----- processes ---------------------------------------------------------

  async execIn(ns: LabNs, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertRunning();
    // firewall-cmd is the running firewalld's own (its signals carry the caller's text verbatim):
    // with a release root, inside firewalld's own namespaces and root while it runs (nothing to
    // set up), else chrooted into a read-only view of the root.
    const isFwCmd = ns === 'server' && path.basename(argv[0] ?? '') === 'firewall-cmd';
    const fwPid = this.firewalldProc && this.procs.managed.has(this.firewalldProc) && this.firewalldProc.child.pid;
    if (isFwCmd && this.fwRoot && fwPid) {
      const enter = [
        'nsenter',
        '-t',
        String(fwPid),
        '-m',
        '-n',
        '-r',
        '-w',
        'env',
        `DBUS_SYSTEM_BUS_ADDRESS=${IN_ROOT_BUS}`,
      ];
      return this.procs.execWith(enter, ns, argv, opts);
    }
    const cmd = isFwCmd ? inRoot(this.fwRoot, this.tmpDir, argv, 'ro') : argv;
    return this.procs.exec(this.nsName(ns), ns, cmd, opts);
  }

  spawnIn(ns: LabNs, argv: string[], opts: { logFile?: string } = {}): ReturnType<Lab['spawnIn']> {
    this.assertRunning();
    const base = path.basename(argv[0] ?? 'cmd').replace(/[^\w.-]/g, '_');
    const logFile = opts.logFile ?? path.join(this.tmpDir, `spawn-${++this.spawnCounter}-${base}.log`);
    return this.procs.start(this.nsName(ns), ns, base, argv, logFile).child;
  }

  async execAsNobody(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (!this.busAddress) throw new Error('execAsNobody: this lab was started without a bus');
    const nobody = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups'];
    const env = ['env', `DBUS_SYSTEM_BUS_ADDRESS=unix:abstract=${this.abstractBus}`];
    return this.execIn('server', [...nobody, ...env, ...argv], opts);
  }

  waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs: number, intervalMs = 100): Promise<T> {
    return waitFor(fn, timeoutMs, intervalMs);
  }

  // ----- firewalld ---------------------------------------------------------

  async firewallCmdRaw(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    if (!this.busAddress) throw new Error('firewallCmdRaw: this lab was started without firewalld');
    const r = await this.execIn('server', ['firewall-cmd', ...args]);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  async firewallCmd(...args: string[]): Promise<string> {
    if (!this.busAddress) throw new Error('firewallCmd: this lab was started without firewalld');
    const r = await this.execIn('server', ['firewall-cmd', ...args]);
    if (r.code !== 0) {
      const how = r.timedOut ? 'timeout' : `exit ${String(r.code ?? r.signal)}`;
      throw new Error(`firewall-cmd ${describe(args)} failed (${how}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout.trim();
  }

  async richRules(zone = 'public'): Promise<string[]> {
    const out = await this.firewallCmd(`--zone=${zone}`, '--list-rich-rules');
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }

  async startFirewalld(): Promise<void> {
    this.assertRunning();
    if (!this.busAddress) throw new Error('startFirewalld: this lab was started without firewalld (no bus)');
    if (this.firewalldProc && this.procs.managed.has(this.firewalldProc)) {
      throw new Error('startFirewalld: firewalld is already running');
    }
    const started = await startFirewalld(
      {
        procs: this.procs,
        serverNs: this.serverNs,
        tmpDir: this.tmpDir,
        serverIfs: this.serverIfs,
        fwRoot: this.fwRoot,
        debug: this.firewalldDebug,
        exec: (argv, opts) => this.execIn('server', argv, opts),
        firewallCmd: (...args) => this.firewallCmd(...args),
      },
      ++this.firewalldStarts,
    );
    this.firewalldProc = started.proc;
    this.firewalldVersion = started.version;
  }

  async stopFirewalld(): Promise<void> {
    const m = this.firewalldProc;
    this.firewalldProc = undefined;
    if (!m) return;
    await this.procs.kill(m, FIREWALLD_STOP_TIMEOUT_MS);
  }

  pauseFirewalld(paused: boolean): void {
    const pid = this.firewalldProc?.child.pid;
    if (pid === undefined || !this.firewalldProc || !this.procs.managed.has(this.firewalldProc))
      throw new Error('pauseFirewalld: firewalld is not running');
    process.kill(pid, paused ? 'SIGSTOP' : 'SIGCONT');
    this.log(`firewalld ${paused ? 'paused (SIGSTOP)' : 'resumed (SIGCONT)'}`);
  }

  async restartBus(): Promise<void> {
    await this.stopFirewalld();
    const bus = this.dbusProc;
    this.dbusProc = undefined;
    if (bus) await this.procs.kill(bus);
    await this.startDbus();
    await this.startFirewalld();
  }

  // ----- probes ------------------------------------------------------------

  async sshBanner(opts: SshBannerOptions = {}): Promise<string | null> {
    const host = opts.host ?? this.serverAddr;
    const timeoutMs = opts.timeoutMs ?? 1_500;
    const from = opts.from ?? 'client';
    const r = await this.execIn(from, bannerProbeArgv(opts, host, timeoutMs), { timeoutMs: timeoutMs + 10_000 });
    this.log(
      `sshBanner[${from}] ${host}:${opts.port ?? 22} from ${opts.source ?? '(default)'} -> ${r.code === 0 ? JSON.stringify(r.stdout) : `null (${r.stderr.trim()})`}`,
    );
    return r.code === 0 ? r.stdout : null;
  }

  // ----- teardown ----------------------------------------------------------

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const t0 = Date.now();
    this.log('stop: begin');
    const errors: string[] = [];
    // 1. Our process groups: SIGTERM, SIGKILL after the grace period. A
    //    release's firewalld takes its mounts with it (they live only in its
    //    own mount namespace).
    await this.procs.killAll();
    // 2. Anything else still inside the namespaces (e.g. processes a test
    //    started by other means), then the namespaces themselves. Deleting
    //    the server namespace destroys the veth pair.
    for (const ns of [this.serverNs, this.clientNs]) {
      const err = destroyNetnsSync(ns);
      if (err) errors.push(err);
    }
    this.log(`stop: done in ${Date.now() - t0} ms`);
    // 3. The temp dir (unless kept for a post-mortem). No mount is ever
    //    visible in this mount namespace, so rm cannot cross one.
    this.procs.close();
    if (process.env.KNLAB_KEEP_TMP === '1') {
      process.stderr.write(`knlab: keeping ${this.tmpDir} (KNLAB_KEEP_TMP=1)\n`);
    } else {
      await fsp
        .rm(this.tmpDir, { recursive: true, force: true })
        .catch((e: unknown) => errors.push(`rm ${this.tmpDir}: ${errMsg(e)}`));
    }
    releaseLab(this);
    if (errors.length > 0) throw new Error(`lab ${this.id} stop: ${errors.join('; ')}`);
  }

  /** Synchronous, best-effort teardown for exit/signal hooks. */
  destroySync(): void {
    this.stopping ??= Promise.resolve();
    this.procs.killAllSync();
    destroyNetnsSync(this.serverNs);
    destroyNetnsSync(this.clientNs);
    this.procs.close();
    if (process.env.KNLAB_KEEP_TMP !== '1') {
      try {
        fs.rmSync(this.tmpDir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
    releaseLab(this);
  }
}
