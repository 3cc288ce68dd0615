/**
 * The daemon: wires capture → decode → matcher → actions (firewalld grants),
 * and owns the lifecycle (start-up checks, interface watching, reload,
 * shutdown). Data flows one way; nothing here knows packet layouts or D-Bus
 * message formats.
 */
import { reverse } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { interfaceAddresses } from '../capture/addresses';
import { buildFilter } from '../capture/filter';
import { CaptureError, PcapCapture } from '../capture/pcap';
import type { Config } from '../config/types';
import { sequenceText } from '../config/parse';
import type { LinkType } from '../decode/types';
import { FirewalldClient, FirewalldError } from '../firewalld/client';
import { Grants } from '../firewalld/grants';
import { richRule, ruleTargets } from '../firewalld/rules';
import { Matcher, type MatchEvent } from '../matcher/matcher';
import { toRuntimeDoors, type RuntimeDoor } from './doors';
import { SystemdNotifier } from './notify';
import { FramePipeline, type FrameStats } from './pipeline';

export interface DaemonOptions {
  /** Interface to listen on (-i, else config Interface, else eth0). */
  iface: string;
  /** -4: ignore IPv6 knocks. */
  ipv4Only: boolean;
  /** -l: reverse-resolve knockers for the log (never delays packet handling). */
  lookup: boolean;
  /** Bound on attempts in flight. */
  maxAttempts?: number;
  /** How often to re-read the interface's addresses (ms). */
  addressPollMs?: number;
}

/** Start-up failures an admin must fix; the message says how. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** At most this many "Stage 1" lines a second: a spoofed flood must not flood the log too. */
const STAGE1_LOG_PER_SECOND = 50;

export class Daemon {
  private readonly capture: PcapCapture;
  private readonly matcher: Matcher;
  private doors: RuntimeDoor[];
  private readonly doorByName = new Map<string, RuntimeDoor>();
  private fw: FirewalldClient | undefined;
  private grants: Grants | undefined;
  private defaultZone = '';
  private localAddrs: string[] = [];
  private timers: NodeJS.Timeout[] = [];
  private waitingLogged = false;
  private stage1Budget = STAGE1_LOG_PER_SECOND;
  private stage1Suppressed = 0;
  private readonly hostnames = new Map<string, string | null>();
  private startedLogged = false;
  /** Why the capture is not open, for STATUS= (empty while listening). */
  private waitingFor = '';
  readonly notifier: SystemdNotifier;
  private readonly pipeline: FramePipeline;

  constructor(
    private config: Config,
    private readonly opts: DaemonOptions,
    private readonly log: Logger,
  ) {
    this.doors = toRuntimeDoors(config.doors);
    this.indexDoors();
    this.matcher = new Matcher(this.doors, (e) => this.onMatch(e), { maxAttempts: opts.maxAttempts });
    this.pipeline = new FramePipeline(this.matcher, opts.ipv4Only);
    this.capture = new PcapCapture((link, buf, len) => this.onFrame(link, buf, len));
    this.notifier = new SystemdNotifier(log);
  }

  /** One line for systemd's STATUS= (shown by `systemctl status knockd`). */
  statusLine(): string {
    if (this.fw && !this.fw.running) return 'firewalld not running, retrying';
    if (!this.capture.open) return this.waitingFor || `waiting for ${this.opts.iface}`;
    const open = this.grantList.length;
    return `listening on ${this.opts.iface}, ${this.doors.length} door${this.doors.length === 1 ? '' : 's'}, ${open} open`;
  }

  private indexDoors(): void {
    this.doorByName.clear();
    for (const d of this.doors) this.doorByName.set(d.name, d);
  }

  /** Check firewalld and the config against it, open the capture. Throws StartupError. */
  async start(): Promise<void> {
    await this.checkFirewalld(this.doors);
    this.refreshInterface(true);
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => this.refreshInterface(false), this.opts.addressPollMs ?? 2000));
  }

  /** Firewalld must be running, and every zone and service the doors name must exist. */
  private async checkFirewalld(doors: readonly RuntimeDoor[]): Promise<void> {
    const fwDoors = doors.filter((d) => d.config.firewalld !== undefined);
    if (fwDoors.length === 0) return;
    if (this.fw === undefined) {
      this.fw = new FirewalldClient();
      this.fw.on('busError', (err) => this.log.warn({ err }, `D-Bus connection lost (${err.message}); reconnecting on the next firewalld call`));
      this.fw.on('down', () => this.log.warn('firewalld left the bus; open grants will be restored when it returns'));
      this.fw.on('up', () => this.log.info('firewalld is on the bus'));
      this.grants = new Grants(this.fw, this.log);
    }
    const fw = this.fw;
    const where = (d: RuntimeDoor, key: string): string => `${this.config.file}:${d.config.lines[key] ?? d.config.line}: [${d.name}]`;
    let zones: string[];
    let services: string[];
    try {
      if (!(await fw.probe())) {
        throw new StartupError(
          'firewalld is not running (no owner of org.fedoraproject.FirewallD1 on the system bus): start it with "systemctl start firewalld"',
        );
      }
      this.defaultZone = await fw.getDefaultZone();
      zones = await fw.getZones();
      services = await fw.listServices();
    } catch (err) {
      if (err instanceof StartupError) throw err;
      const e = err as Error;
      const hint = err instanceof FirewalldError && err.unreachable ? ' (is firewalld running? "systemctl status firewalld")' : '';
      throw new StartupError(`cannot talk to firewalld over D-Bus: ${e.message}${hint}`);
    }
    const problems: string[] = [];
    for (const d of fwDoors) {
      const fwd = d.config.firewalld!;
      const zone = fwd.zone ?? this.defaultZone;
      if (!zones.includes(zone)) {
        problems.push(`${where(d, 'FIREWALLD_ZONE')} firewalld has no zone "${zone}" (zones: ${zones.join(', ')})`);
      }
      for (const s of fwd.services) {
        if (!services.includes(s)) problems.push(`${where(d, 'FIREWALLD_SERVICE')} firewalld has no service "${s}" (see "firewall-cmd --get-services")`);
      }
    }
    if (problems.length) throw new StartupError(problems.join('\n'));
  }

  /** Find the interface and its addresses; (re)open the capture when they change. */
  private refreshInterface(first: boolean): void {
    const { iface, ipv4Only } = this.opts;
    const info = interfaceAddresses(iface, ipv4Only);
    if (!info.exists) {
      if (this.capture.open) {
        this.capture.stop();
        this.log.warn(`interface ${iface} disappeared; waiting for it to come back`);
      } else if (first || !this.waitingLogged) {
        this.log.warn(`interface ${iface} does not exist (yet); waiting for it`);
      }
      this.waitingLogged = true;
      this.waitingFor = `waiting for ${iface}`;
      this.localAddrs = [];
      return;
    }
    if (info.addrs.length === 0 && this.doors.some((d) => d.target === undefined)) {
      // Knocks are matched against the interface's own addresses: none yet means nothing can match.
      if (this.capture.open) this.capture.stop();
      if (first || this.waitingFor !== `waiting for an address on ${iface}`) this.log.warn(`interface ${iface} has no address (yet); waiting for one`);
      this.waitingFor = `waiting for an address on ${iface}`;
      this.localAddrs = [];
      return;
    }
    const changed = info.addrs.join(' ') !== this.localAddrs.join(' ');
    if (!changed && this.capture.open) return;
    if (changed && !first && this.localAddrs.length) this.log.info(`addresses of ${iface} changed: ${info.addrs.join(', ') || 'none'}`);
    this.localAddrs = info.addrs;
    this.matcher.setLocalAddresses(info.addrs);
    this.openCapture(first);
  }

  private openCapture(first: boolean): void {
    const filter = buildFilter(this.doors, this.localAddrs);
    try {
      const link = this.capture.start(this.opts.iface, filter);
      this.waitingLogged = false;
      this.waitingFor = '';
      this.log.debug(`pcap filter: ${filter}`);
      if (first || !this.startedLogged) {
        this.log.info(`starting up, listening on ${this.opts.iface} (${link}, ${this.doors.length} door(s): ${this.doors.map((d) => `${d.name} ${sequenceText(d.config)}`).join('; ')})`);
        this.startedLogged = true;
      } else {
        this.log.info(`listening on ${this.opts.iface} again`);
      }
      void this.notifier.markReady(this.statusLine());
    } catch (err) {
      if (!(err instanceof CaptureError)) throw err;
      if (!this.waitingLogged) this.log.warn(`${err.message}; retrying every few seconds`);
      this.waitingLogged = true;
      this.waitingFor = `cannot capture on ${this.opts.iface}, retrying`;
    }
  }
  private tick(): void {
    this.matcher.sweep(performance.now());
    void this.notifier.status(this.statusLine());
    if (this.stage1Suppressed > 0) {
      this.log.info(`${this.stage1Suppressed} more "Stage 1" line(s) suppressed in the last second (${this.matcher.size} attempts in flight)`);
      this.stage1Suppressed = 0;
    }
    this.stage1Budget = STAGE1_LOG_PER_SECOND;
  }

  /** Per-packet path (see FramePipeline); an exception here must never reach libpcap's callback. */
  private onFrame(link: LinkType, buf: Buffer, len: number): void {
    try {
      this.pipeline.onFrame(link, buf, len, performance.now());
    } catch (err) {
      this.log.error({ err }, `internal error while handling a packet: ${(err as Error).message}`);
    }
  }

  private who(src: string): string {
    if (!this.opts.lookup) return src;
    const cached = this.hostnames.get(src);
    if (cached === undefined) {
      this.hostnames.set(src, null);
      if (this.hostnames.size > 10_000) this.hostnames.delete(this.hostnames.keys().next().value as string);
      reverse(src).then(
        (names) => this.hostnames.set(src, names[0] ?? null),
        () => undefined,
      );
    }
    return cached ? `${src} (${cached})` : src;
  }

  private onMatch(e: MatchEvent): void {
    const ctx = { src: e.src, door: e.door.name };
    switch (e.type) {
      case 'stage':
        if (e.stage === 1 && this.stage1Budget-- <= 0) {
          this.stage1Suppressed++;
          return;
        }
        this.log.info(ctx, `${this.who(e.src)}: ${e.door.name}: Stage ${e.stage}`);
        return;
      case 'timeout':
        this.log.info(ctx, `${this.who(e.src)}: ${e.door.name}: sequence timeout (stage ${e.stage})`);
        return;
      case 'spoiled':
        this.log.info(ctx, `${this.who(e.src)}: ${e.door.name}: wrong knock ${e.proto === 6 ? 'tcp' : 'udp'}/${e.port} at stage ${e.stage}, sequence reset`);
        return;
      case 'evicted':
        this.log.debug(ctx, `${e.src}: ${e.door.name}: attempt at stage ${e.stage} evicted (attempt table full)`);
        return;
      case 'open':
      case 'close':
        this.log.info(ctx, `${this.who(e.src)}: ${e.door.name}: OPEN SESAME`);
        this.act(e.type, this.doorByName.get(e.door.name)!, e.src, e.family);
        return;
    }
  }

  private act(kind: 'open' | 'close', door: RuntimeDoor, src: string, family: 4 | 6): void {
    const fwd = door.config.firewalld;
    if (fwd === undefined || this.grants === undefined) return;
    const zone = fwd.zone ?? this.defaultZone;
    const who = { src, door: door.name };
    for (const target of ruleTargets(fwd)) {
      const rule = richRule(family, src, target);
      if (kind === 'open') void this.grants.open(zone, rule, door.config.cmdTimeout, who);
      else void this.grants.close(zone, rule, who);
    }
  }

  /** SIGHUP: a valid new config replaces the old; an invalid one is reported and the old keeps running. */
  async reload(next: Config): Promise<void> {
    const doors = toRuntimeDoors(next.doors);
    await this.checkFirewalld(doors);
    this.config = next;
    this.doors = doors;
    this.indexDoors();
    this.matcher.setDoors(doors);
    this.openCapture(false);
    this.log.info(`configuration reloaded from ${next.file}: ${doors.length} door(s)`);
  }

  /** Frame counters (malformed frames are counted here). */
  get frameStats(): FrameStats {
    return this.pipeline.stats;
  }

  get grantList(): ReturnType<Grants['list']> {
    return this.grants?.list() ?? [];
  }

  /** Stop capturing, finish queued firewalld calls, let go of the bus. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.capture.stop();
    await this.grants?.settle();
    this.grants?.dispose();
    this.fw?.close();
  }
}
