/**
 * The daemon: wires capture → decode → matcher → actions (firewalld grants),
 * and owns the lifecycle (start-up checks, interface watching, reload,
 * shutdown). Data flows one way; nothing here knows packet layouts or D-Bus
 * message formats.
 */
import { BadSpaLog } from './bad-spa';
import { lookupService } from 'node:dns/promises';
import type { Logger } from 'pino';
import { linkDown, interfaceAddresses } from '../capture/addresses';
import { buildFilter } from '../capture/filter';
import type { WireDoor, WireEvent, WireSpaDoor } from '../capture/protocol';
import { ruleTemplates, type SpaDoor } from '../model';
import { doorZones } from '../firewalld/check';
import { spaKeysToWire } from '../spa/keys';
import { SpaReplay } from './spa-replay';
import { CaptureSupervisor } from '../capture/supervisor';
import { DEFAULT_RING_MB, SNAPLEN, SPA_SNAPLEN } from '../capture/protocol';
import type { Config } from '../config/types';
import { sequenceText } from '../config/parse';
import { FirewalldClient, FirewalldError } from '../firewalld/client';
import { Grants } from '../firewalld/grants';
import { DEFAULT_MAX_ATTEMPTS } from '../matcher/matcher';
import { disableOneTimeSequence, firstOneTimeSequence, type OneTimeSequence } from '../config/onetime';
import { join } from 'node:path';
import { lockStateDir, type StateDirLock } from '../state/lock';
import { Actions } from './actions';
import { CommandRunner, loadPendingStops } from './commands';
import { toRuntimeDoors, type RuntimeDoor } from './doors';
import { SystemdNotifier } from './notify';
import { StatusService, type StatusSnapshot } from './status';

export interface DaemonOptions {
  /** Interface(s) to listen on (-i, else config Interface, else eth0 or the default route's): `eno1` or `eno1,eno2`, or `any`. */
  iface: string;
  /** -4: ignore IPv6 knocks. */
  ipv4Only: boolean;
  /** -l: reverse-resolve knockers for the log (never delays packet handling). */
  lookup: boolean;
  /** Bound on attempts in flight. */
  maxAttempts?: number;
  /** How often to re-read the interface's addresses (ms). */
  addressPollMs?: number;
  /** Where pending stop commands and held grants are kept across restarts (default /run/knockd). */
  stateDir?: string;
  /** libpcap ring size in MiB (--capture-buffer). */
  captureBufferMB?: number;
  /** Publish org.knockd.Knockd1 on the system bus for `knockd --status` (default true). */
  statusService?: boolean;
  version?: string;
}

/** Start-up failures an admin must fix; the message says how. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** How long a stop waits for firewalld calls still queued. */
const SHUTDOWN_FIREWALLD_MS = 5000;

/** What --status shows of a firewalld door: its services and ports, or (converted command lines) its rules. */
function doorRules(fwd: NonNullable<Config['doors'][number]['firewalld']>): string[] {
  if (fwd.from === 'directives') return [...fwd.services, ...fwd.ports.map((p) => `${p.port}/${p.proto}`)];
  return [...new Set(ruleTemplates(fwd).map((r) => r.rule))];
}

/** At most this many "Stage 1" lines a second: a spoofed flood must not flood the log too. */
const STAGE1_LOG_PER_SECOND = 50;

/** The matcher's view of a door: plain data, sent to the capture process. */
function wireSpaDoor(d: SpaDoor): WireSpaDoor {
  const k = spaKeysToWire(d.keys);
  return { name: d.name, port: d.port, hmacKeyBase64: k.hmacBase64, hmacType: k.hmacType };
}

function wireDoor(d: RuntimeDoor): WireDoor {
  return {
    name: d.name,
    sequence: d.sequence,
    seqTimeoutMs: d.seqTimeoutMs,
    tcpFlags: d.tcpFlags,
    action: d.action,
    ...(d.target !== undefined ? { target: d.target } : {}),
    ...(d.config.oneTimeSequences !== undefined ? { oneTime: true } : {}),
  };
}

export class Daemon {
  private readonly capture: CaptureSupervisor;
  private doors: RuntimeDoor[];
  private readonly doorByName = new Map<string, RuntimeDoor>();
  private fw: FirewalldClient | undefined;
  private grants: Grants | undefined;
  private defaultZone = '';
  private localAddrs: string[] = [];
  /** The interfaces to listen on (`opts.iface` split at commas). */
  private readonly ifaces: string[];
  /** Per interface: why it cannot be captured on ('' = ready) and its addresses, as last seen. */
  private readonly ifaceWait = new Map<string, string>();
  private readonly ifaceAddrs = new Map<string, string>();
  /** The interfaces the capture process was last given. */
  private captureIfaces: string[] = [];
  private timers: NodeJS.Timeout[] = [];
  private lookupWarned = false;
  private readonly hostnames = new Map<string, string | null>();
  private startedLogged = false;
  /** Why the capture is not open, for STATUS= (empty while listening). */
  private waitingFor = '';
  readonly notifier: SystemdNotifier;
  private readonly commands: CommandRunner;
  /** SPA packets seen (replay cache), kept across restarts. */
  private readonly spaReplay: SpaReplay;
  private readonly stateDir: string;
  private status: StatusService | undefined;
  /** The sequence each One_Time_Sequences door is using now. */
  private readonly oneTime = new Map<string, OneTimeSequence>();
  /** The one path from a completed knock to firewalld or the shell (made once firewalld is known). */
  private actions: Actions | undefined;
  private lock: StateDirLock | undefined;
  /** SPA packets whose HMAC failed: one log line per source a minute (fail2ban). */
  private readonly badSpa: BadSpaLog;

  constructor(
    private config: Config,
    private readonly opts: DaemonOptions,
    private readonly log: Logger,
  ) {
    this.doors = toRuntimeDoors(config.doors);
    this.badSpa = new BadSpaLog(log);
    this.indexDoors();
    this.ifaces = [
      ...new Set(
        opts.iface
          .split(',')
          .map((i) => i.trim())
          .filter((i) => i !== ''),
      ),
    ];
    if (this.ifaces.length === 0) this.ifaces = [opts.iface];
    this.capture = new CaptureSupervisor(log);
    this.capture.on('event', (e) => this.onMatch(e));
    this.capture.on('listening', (iface, link, again) => this.onListening(iface, link, again));
    this.capture.on('suppressed', (s) => {
      const parts = [
        s.count ? `${s.count} "Stage 1"` : '',
        s.timeouts ? `${s.timeouts} stage-1 "sequence timeout"` : '',
      ].filter(Boolean);
      const held = parts.length ? `${parts.join(' and ')} line(s) suppressed in the last second; ` : '';
      const ev = s.evicted ? `${s.evicted} attempt(s) evicted (table full, --max-attempts); ` : '';
      this.log.info(`${held}${ev}${s.inFlight} attempts in flight`);
    });
    this.notifier = new SystemdNotifier(log);
    this.stateDir = opts.stateDir ?? '/run/knockd';
    this.commands = new CommandRunner(log, { stateFile: join(this.stateDir, 'commands.json') });
    this.spaReplay = new SpaReplay(join(this.stateDir, 'spa-replay.json'), log);
  }

  /** One line for systemd's STATUS= (shown by `systemctl status knockd`). */
  statusLine(): string {
    if (this.fw && !this.fw.running) return 'firewalld not running, retrying';
    if (!this.capture.listening)
      return this.waitingFor || this.capture.problem || `waiting for ${this.ifaces.join(', ')}`;
    const open = this.grantList.length + this.commands.pending().length;
    const closing = this.grants?.closingCount ?? 0;
    const waiting = (this.grants?.pendingCount ?? 0) - closing;
    const extra = `${waiting ? `, ${waiting} waiting for firewalld` : ''}${closing ? `, ${closing} closing (not yet confirmed by firewalld)` : ''}`;
    const on = this.capture.interfaces.map((i) => i.iface);
    const notYet = this.ifaces
      .filter((i) => !on.includes(i))
      .map((i) => this.ifaceWait.get(i) || this.capture.problemOf(i) || `waiting for ${i}`);
    return `listening on ${on.join(', ')}${notYet.length ? ` (${notYet.join('; ')})` : ''}, ${this.doors.length} door${this.doors.length === 1 ? '' : 's'}, ${open - closing} open${extra}`;
  }

  private indexDoors(): void {
    this.doorByName.clear();
    for (const d of this.doors) this.doorByName.set(d.name, d);
  }

  /** Check firewalld and the config against it, open the capture. Throws StartupError. */
  async start(): Promise<void> {
    try {
      this.lock = await lockStateDir(this.stateDir);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.doors = await this.loadOneTimeSequences(this.doors);
    this.indexDoors();
    await this.checkFirewalld(this.doors);
    this.actions = new Actions(this.grants, this.commands, this.log, () => this.defaultZone);
    this.logConvertedDoors(this.doors);
    const grantsFile = join(this.stateDir, 'grants.json');
    const restored = (await this.grants?.restore(grantsFile)) ?? 0;
    if (restored) this.log.info(`took over ${restored} grant(s) held before the restart (${grantsFile})`);
    const commandsFile = join(this.stateDir, 'commands.json');
    const stops = await loadPendingStops(commandsFile);
    for (const p of stops.problems) this.log.error(p);
    if (stops.movedTo)
      this.log.error(
        `${commandsFile}: moved aside to ${stops.movedTo}; its ${stops.entries.length} valid stop command(s) are honoured`,
      );
    if (stops.keep) this.commands.holdState('could not be read at start-up');
    if (this.doors.some((d) => d.config.spa)) await this.spaReplay.load();
    if (stops.entries.length) {
      this.log.info(
        `${stops.entries.length} stop command(s) pending from the previous run; rescheduled (overdue ones run now)`,
      );
      this.commands.restore(stops.entries);
    }
    this.refreshInterface(true);
    if (this.opts.statusService !== false) {
      // Not awaited: without a system bus (or its policy) this must not hold up start-up.
      this.status = new StatusService(this.log, () => this.snapshot());
      void this.status.start();
    }
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => this.refreshInterface(false), this.opts.addressPollMs ?? 2000));
  }

  /** Say which doors' firewall-cmd command lines are carried out over D-Bus instead of the shell. */
  private logConvertedDoors(doors: readonly RuntimeDoor[]): void {
    for (const d of doors) {
      const f = d.config.firewalld;
      if (f?.from !== 'commands') continue;
      const rules = [
        ...new Set(
          ruleTemplates(f).map(
            (r) =>
              `zone ${r.zone ?? this.defaultZone}: ${r.rule}${f.action === 'open' ? ` (${r.timeout ? `timeout ${r.timeout}s` : 'no timeout'})` : ''}`,
          ),
        ),
      ];
      this.log.info(
        `${d.name}: firewall-cmd command lines carried out natively over D-Bus (no shell, no firewall-cmd process): ${f.action === 'open' ? 'add' : 'remove'} ${rules.join('; ')}`,
      );
    }
  }

  /** Give each One_Time_Sequences door the first unused sequence of its file; doors whose file is used up are left out. */
  private async loadOneTimeSequences(doors: RuntimeDoor[]): Promise<RuntimeDoor[]> {
    const out: RuntimeDoor[] = [];
    for (const d of doors) {
      const file = d.config.oneTimeSequences;
      if (file === undefined) {
        out.push(d);
        continue;
      }
      let seq: OneTimeSequence | undefined;
      try {
        seq = await firstOneTimeSequence(file);
      } catch (err) {
        throw new StartupError(
          `${this.config.file}:${d.config.lines.ONE_TIME_SEQUENCES ?? d.config.line}: [${d.name}] cannot read One_Time_Sequences file: ${(err as Error).message}`,
        );
      }
      if (seq === undefined) {
        this.log.warn(
          `no more sequences left in the one time sequences file ${file} for door ${d.name} --> disabling the door`,
        );
        continue;
      }
      this.oneTime.set(d.name, seq);
      this.log.info(`${d.name}: one-time sequence from ${file} line ${seq.line}`);
      out.push({ ...d, sequence: seq.sequence });
    }
    return out;
  }

  /** A one-time door opened: disable the used line, move to the next one (or close the door). */
  private async nextOneTimeSequence(door: RuntimeDoor): Promise<void> {
    const file = door.config.oneTimeSequences!;
    const used = this.oneTime.get(door.name);
    let next: OneTimeSequence | undefined;
    try {
      if (used) await disableOneTimeSequence(file, used);
      next = await firstOneTimeSequence(file);
    } catch (err) {
      this.log.error(
        `error while disabling used one time sequence for door ${door.name} (${(err as Error).message}) --> disabling the door`,
      );
    }
    if (next) {
      this.oneTime.set(door.name, next);
      this.doors = this.doors.map((d) => (d.name === door.name ? { ...d, sequence: next.sequence } : d));
      this.log.info(`${door.name}: next one-time sequence from ${file} line ${next.line}`);
    } else {
      this.oneTime.delete(door.name);
      this.doors = this.doors.filter((d) => d.name !== door.name);
      this.log.warn(
        `no more sequences left in the one time sequences file ${file} for door ${door.name} --> disabling the door`,
      );
    }
    this.indexDoors();
    const w = this.wire(this.doors);
    this.capture.setDoors(w.doors, w.spa, w.filter);
  }

  /** What the capture process gets: knock doors for the matcher, SPA doors' ports and HMAC keys, and the BPF filter. */
  private wire(doors: readonly RuntimeDoor[]): { doors: WireDoor[]; spa: WireSpaDoor[]; filter: string } {
    const knock = doors.filter((d) => d.config.spa === undefined);
    const spa = doors.flatMap((d) => (d.config.spa ? [wireSpaDoor(d.config.spa)] : []));
    return {
      doors: knock.map(wireDoor),
      spa,
      filter: buildFilter(
        knock,
        this.localAddrs,
        spa.map((s) => s.port),
      ),
    };
  }

  /** Firewalld must be running, and every zone and service the doors name must exist. */
  private async checkFirewalld(doors: readonly RuntimeDoor[]): Promise<void> {
    const fwDoors = doors.filter((d) => d.config.firewalld !== undefined);
    const spaDoors = doors.filter((d) => d.config.spa !== undefined);
    if (fwDoors.length === 0 && spaDoors.length === 0) return;
    if (this.fw === undefined) {
      this.fw = new FirewalldClient();
      this.fw.on('busError', (err) =>
        this.log.warn({ err }, `D-Bus connection lost (${err.message}); reconnecting on the next firewalld call`),
      );
      this.fw.on('down', () => this.log.warn('firewalld left the bus; open grants will be restored when it returns'));
      this.fw.on('up', () => this.log.info('firewalld is on the bus'));
      this.fw.on('reconnected', () => this.log.info('D-Bus connection re-established; checking the grants held'));
      this.grants = new Grants(this.fw, this.log, { stateFile: join(this.stateDir, 'grants.json') });
    }
    const fw = this.fw;
    const where = (d: RuntimeDoor, key: string): string =>
      `${this.config.file}:${d.config.lines[key] ?? d.config.line}: [${d.name}]`;
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
      const hint =
        err instanceof FirewalldError && err.unreachable ? ' (is firewalld running? "systemctl status firewalld")' : '';
      throw new StartupError(`cannot talk to firewalld over D-Bus: ${e.message}${hint}`);
    }
    const problems: string[] = [];
    for (const d of spaDoors) {
      const zone = d.config.spaZone ?? this.defaultZone;
      if (!zones.includes(zone))
        problems.push(`${where(d, 'FIREWALLD_ZONE')} firewalld has no zone "${zone}" (zones: ${zones.join(', ')})`);
    }
    for (const d of fwDoors) {
      const fwd = d.config.firewalld!;
      const key = fwd.from === 'directives' ? 'FIREWALLD_ZONE' : 'START_COMMAND';
      for (const zone of doorZones(d.config, this.defaultZone)) {
        if (!zones.includes(zone))
          problems.push(`${where(d, key)} firewalld has no zone "${zone}" (zones: ${zones.join(', ')})`);
      }
      for (const s of fwd.services) {
        if (!services.includes(s))
          problems.push(
            `${where(d, 'FIREWALLD_SERVICE')} firewalld has no service "${s}" (see "firewall-cmd --get-services")`,
          );
      }
    }
    if (problems.length) throw new StartupError(problems.join('\n'));
  }

  /**
   * Find the interfaces and their addresses; start, update or stop the
   * capture process accordingly. Each interface is looked at on its own: one
   * that is missing or has no address is waited for while the others capture.
   * Knocks on any of them count when addressed to an address of any of them.
   */
  private refreshInterface(first: boolean): void {
    const { ipv4Only } = this.opts;
    const ready: string[] = [];
    const waits: string[] = [];
    const all = new Set<string>();
    for (const iface of this.ifaces) {
      const info = interfaceAddresses(iface, ipv4Only);
      const prev = this.ifaceWait.get(iface);
      let wait = '';
      if (!info.exists) {
        wait = `waiting for ${iface}`;
        if (prev === '') this.log.warn(`interface ${iface} disappeared; waiting for it to come back`);
        else if (first) this.log.warn(`interface ${iface} does not exist (yet); waiting for it`);
      } else if (info.addrs.length === 0 && this.doors.some((d) => d.target === undefined)) {
        // Knocks are matched against the interface's own addresses: none yet means nothing can match.
        wait = `waiting for an address on ${iface}`;
        if (first || prev !== wait) this.log.warn(`interface ${iface} has no address (yet); waiting for one`);
      } else if (linkDown(iface)) {
        wait = `waiting for the link on ${iface}`;
        if (first || prev !== wait) this.log.warn(`interface ${iface}: link is down; waiting for it`);
      }
      this.ifaceWait.set(iface, wait);
      const addrs = wait ? '' : info.addrs.join(', ');
      const before = this.ifaceAddrs.get(iface);
      if (addrs && before && addrs !== before) this.log.info(`addresses of ${iface} changed: ${addrs}`);
      this.ifaceAddrs.set(iface, addrs);
      if (wait) waits.push(wait);
      else {
        ready.push(iface);
        for (const a of info.addrs) all.add(a);
      }
    }
    this.waitingFor = waits.join('; ');
    if (ready.length === 0) {
      if (this.capture.running) this.capture.stop();
      this.localAddrs = [];
      this.captureIfaces = [];
      return;
    }
    const local = [...all].sort();
    const changed = local.join(' ') !== this.localAddrs.join(' ') || ready.join(',') !== this.captureIfaces.join(',');
    this.localAddrs = local;
    this.captureIfaces = ready;
    const w = this.wire(this.doors);
    const filter = w.filter;
    if (!this.capture.running) {
      this.log.debug(`pcap filter: ${filter}`);
      this.capture.start({
        ifaces: ready,
        filter,
        doors: w.doors,
        spa: w.spa,
        snaplen: w.spa.length ? SPA_SNAPLEN : SNAPLEN,
        local: this.localAddrs,
        ipv4Only,
        maxAttempts: this.opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
        stage1PerSecond: STAGE1_LOG_PER_SECOND,
        ringMB: this.opts.captureBufferMB ?? DEFAULT_RING_MB,
      });
    } else if (changed || this.capture.lost(ready).length > 0) {
      this.log.debug(`pcap filter: ${filter}`);
      this.capture.setLocal(this.localAddrs, filter, ready);
    }
  }

  private onListening(iface: string, link: string, again: boolean): void {
    if (!this.startedLogged) {
      this.log.info(
        `starting up, listening on ${iface} (${link}, ${this.doors.length} door(s): ${this.doors.map((d) => `${d.name} ${sequenceText({ sequence: [...d.sequence] })}`).join('; ')})`,
      );
      this.startedLogged = true;
    } else if (again) {
      this.log.info(`listening on ${iface} again`);
    } else {
      this.log.info(`listening on ${iface} (${link})`);
    }
    this.notifier.markReady(this.statusLine());
  }

  private tick(): void {
    this.notifier.status(this.statusLine());
  }

  private who(src: string): string {
    if (!this.opts.lookup) return src;
    const cached = this.hostnames.get(src);
    if (cached === undefined) {
      this.hostnames.set(src, null);
      if (this.hostnames.size > 10_000) this.hostnames.delete(this.hostnames.keys().next().value as string);
      // getnameinfo(3) on libuv's thread pool, like knockd's gethostbyaddr (hosts file, then DNS),
      // but off the packet path: the first line of a new source may still show the bare address.
      lookupService(src, 0).then(
        (r) => this.hostnames.set(src, r.hostname && r.hostname !== src ? r.hostname : null),
        (err: NodeJS.ErrnoException) => this.lookupFailed(src, err),
      );
    }
    return cached ? `${src} (${cached})` : src;
  }

  /** A reverse lookup that failed for another reason than "no name": said once (knockd.service denies IP traffic). */
  private lookupFailed(src: string, err: NodeJS.ErrnoException): void {
    if (err.code === 'ENOTFOUND' || this.lookupWarned) return;
    this.lookupWarned = true;
    this.log.warn(
      `-l: reverse lookup of ${src} failed (${err.code ?? err.message}): DNS cannot be reached, names come from /etc/hosts only (said once). ` +
        'Under knockd.service, IPAddressDeny=any blocks DNS: a drop-in with an empty IPAddressDeny= allows it',
    );
  }

  private onMatch(e: WireEvent): void {
    const ctx = { src: e.src, door: e.door };
    switch (e.type) {
      case 'stage':
        this.log.info(ctx, `${this.who(e.src)}: ${e.door}: Stage ${e.stage}`);
        return;
      case 'timeout':
        this.log.info(ctx, `${this.who(e.src)}: ${e.door}: sequence timeout (stage ${e.stage})`);
        return;
      case 'spoiled':
        this.log.info(
          ctx,
          `${this.who(e.src)}: ${e.door}: wrong knock ${e.proto === 6 ? 'tcp' : 'udp'}/${e.port} at stage ${e.stage}, sequence reset`,
        );
        return;
      case 'spa-bad':
        this.badSpa.report(e.src, e.door, this.who(e.src));
        return;
      case 'spa': {
        const door = this.doorByName.get(e.door);
        if (door?.config.spa === undefined) {
          this.log.warn(ctx, `${e.src}: SPA packet for "${e.door}", which is not an SPA door (any more); ignored`);
          return;
        }
        const v = this.spaReplay.judge(Buffer.from(e.payload, 'latin1'), e.src, door.config.spa);
        if (!v.ok) {
          this.log.warn(
            { ...ctx, code: v.code },
            `${this.who(e.src)}: ${e.door}: SPA packet refused (${v.code}): ${v.reason}`,
          );
          return;
        }
        const ports = v.grant.ports.map((p) => `${p.proto}/${p.port}`).join(',');
        this.log.info(
          ctx,
          `${this.who(e.src)}: ${e.door}: SPA packet accepted (user ${JSON.stringify(v.message.username)}): open ${ports} for ${v.grant.address}, ${v.grant.timeout}s`,
        );
        // Its digest is on disk before the rule goes in: a crash between the two cannot make this packet work twice.
        const grant = v.grant;
        void this.spaReplay.settled().then(() => this.actions?.spa(door, grant));
        return;
      }
      case 'open':
      case 'close': {
        this.log.info(ctx, `${this.who(e.src)}: ${e.door}: OPEN SESAME`);
        const door = this.doorByName.get(e.door);
        if (door) {
          this.actions?.knock(door, e.src, e.family);
          if (door.config.oneTimeSequences !== undefined) void this.nextOneTimeSequence(door);
        }
        return;
      }
    }
  }

  /** SIGHUP: a valid new config replaces the old; an invalid one is reported and the old keeps running. */
  async reload(next: Config): Promise<void> {
    const doors = await this.loadOneTimeSequences(toRuntimeDoors(next.doors));
    await this.checkFirewalld(doors);
    this.config = next;
    this.doors = doors;
    this.indexDoors();
    const w = this.wire(doors);
    if (w.spa.length > 0 !== this.capture.snaplen > SNAPLEN) {
      // SPA doors came or went: the capture needs another snaplen, and a handle is only opened once.
      this.capture.stop();
      this.refreshInterface(false);
    } else {
      this.capture.setDoors(w.doors, w.spa, w.filter);
    }
    this.logConvertedDoors(doors);
    this.log.info(`configuration reloaded from ${next.file}: ${doors.length} door(s)`);
  }

  get grantList(): ReturnType<Grants['list']> {
    return this.grants?.list() ?? [];
  }

  /** What `knockd --status` shows. */
  async snapshot(): Promise<StatusSnapshot> {
    const now = Date.now();
    const cap = await this.capture.stats();
    return {
      pid: process.pid,
      version: this.opts.version ?? '',
      iface: this.opts.iface,
      status: this.statusLine(),
      listening: this.capture.listening,
      interfaces: this.ifaces.map((name) => {
        const on = this.capture.interfaces.find((i) => i.iface === name);
        return on
          ? { name, listening: true, state: `listening (${on.link})` }
          : { name, listening: false, state: this.ifaceWait.get(name) || this.capture.problemOf(name) || 'waiting' };
      }),
      doors: this.doors.map((d) => {
        const fwd = d.config.firewalld;
        const c = d.config;
        return {
          name: d.name,
          sequence: sequenceText({ sequence: [...d.sequence] }),
          action: d.action,
          ...(fwd ? { zone: fwd.zone ?? this.defaultZone, rules: doorRules(fwd) } : {}),
          commands: Boolean(c.startCommand || c.startCommand6),
        };
      }),
      grants: this.grantList.map((g) => ({
        src: g.src,
        door: g.door,
        zone: g.zone,
        rule: g.rule,
        secondsLeft: g.expiresAt > 0 ? Math.max(0, Math.round((g.expiresAt - now) / 1000)) : null,
        applied: g.state === 'open',
        state: g.state,
      })),
      pendingStops: this.commands
        .pending()
        .map((p) => ({ door: p.door, src: p.src, secondsLeft: Math.max(0, Math.round((p.dueAt - now) / 1000)) })),
      ...(cap ? { capture: { ...cap.frames, inFlight: cap.inFlight, evicted: cap.matcher.evicted } } : {}),
    };
  }

  /** Stop capturing, finish queued firewalld calls, let go of the bus. */
  async stop(): Promise<void> {
    this.notifier.stopping('stopping: closing what a stop closes, finishing firewalld calls');
    this.status?.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.capture.stop();
    // Pending stop commands run now: a restart never leaves a shell-command door open.
    await this.commands.flush();
    // Queued firewalld calls finish, but a hung firewalld does not hold up the stop: what is
    // still closing stays in grants.json, and the next start confirms it.
    if (this.grants && !(await this.grants.stop(SHUTDOWN_FIREWALLD_MS))) {
      this.log.warn(
        `firewalld did not answer within ${SHUTDOWN_FIREWALLD_MS / 1000} s; unfinished grants are kept in ${join(this.stateDir, 'grants.json')} for the next start`,
      );
    }
    this.grants?.dispose();
    await this.spaReplay.settled();
    this.fw?.close();
    await this.lock?.release();
  }
}
