/**
 * The daemon's lifecycle: start, reload (SIGHUP), stop, and the one place
 * where capture events are dispatched (knock → actions.ts, SPA →
 * spa-replay.ts then actions.ts).
 *
 * What a config needs (its doors with their one-time sequences, the firewalld
 * link with its client and grant table, the action path, the SPA replay cache,
 * what the capture process gets) is built in one place, `build()` + `commit()`,
 * from the config, at start and at every reload, so a reload leaves the daemon
 * as a fresh start with the new config would; what the daemon holds (grants,
 * pending stop commands, the capture's attempts in flight) is kept. A refused
 * reload changes nothing. Each other concern has a module of its own:
 * interfaces.ts (interface watching), onetime-doors.ts, firewall.ts,
 * reload-grants.ts, names.ts (reverse DNS), snapshot.ts (status), wire.ts.
 *
 * Shell-command doors never depend on firewalld: with firewalld away at start
 * the daemon starts, runs the overdue stop commands and serves them, and arms
 * the firewalld and SPA doors once firewalld answers (READY=1 then).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_RING_MB, SNAPLEN, SPA_SNAPLEN } from '../capture/protocol';
import { CaptureSupervisor } from '../capture/supervisor';
import { sequenceText } from '../config/parse';
import type { Config } from '../config/types';
import { DEFAULT_MAX_ATTEMPTS } from '../matcher/matcher';
import { lockStateDir, type StateDirLock } from '../state/lock';
import { Actions } from './actions';
import { ImpossibleSources } from './impossible-sources';
import { CommandRunner } from './commands';
import { restorePendingStops } from './command-state';
import { dispatchEvent, type EventRuntime } from './dispatch';
import { CompletionLimit } from './completions';
import { BadSpaLog } from './bad-spa';
import { logLockoutWarnings } from '../firewalld/lockout';
import { toRuntimeDoors, type RuntimeDoor } from './doors';
import { EventLog, REPORT_LOG_PER_SECOND } from './event-log';
import { FirewallLink, logConvertedDoors, needsFirewalld, type FirewalldCheck } from './firewall';
import { InterfaceWatcher } from './interfaces';
import { ReverseNames } from './names';
import { SystemdNotifier } from './notify';
import { NotifyHook } from './notify-hook';
import { OneTimeDoors, OneTimeFileError, type PreparedOneTime } from './onetime-doors';
import { grantOrigin, stopOrigin } from './state-origin';
import { snapshot, statusLine, type DaemonView } from './snapshot';
import { SpaReplay } from './spa-replay';
import { StatusService, type StatusSnapshot } from './status';
import { wire } from './wire';
import { armedDoors, closeGrantsNotMade, firewalldWait, notifyGrantEnded } from './arming';
import { StartupError, type DaemonOptions } from './options';

export { StartupError, type DaemonOptions } from './options';

/** How long a stop waits for firewalld calls still queued. */
const SHUTDOWN_FIREWALLD_MS = 5000;
/** At most this many "Stage 1" lines a second from the capture process's own budget. */
const STAGE1_LOG_PER_SECOND = 50;

/** A config built and checked, not yet running. */
interface Built {
  config: Config;
  oneTime: PreparedOneTime;
  /** undefined: no door needs firewalld. */
  firewalld: FirewalldCheck | undefined;
}

/** The running config and what was built from it. */
interface Runtime extends Built, EventRuntime {
  doors: RuntimeDoor[];
}

export class Daemon {
  private readonly capture: CaptureSupervisor;
  private readonly interfaces: InterfaceWatcher;
  private readonly link: FirewallLink;
  private readonly commands: CommandRunner;
  /** notify_command runs (notify-hook.ts), bounded across reloads. */
  private readonly notify: NotifyHook;
  private readonly oneTime: OneTimeDoors;
  private readonly names: ReverseNames;
  private readonly events: EventLog;
  /** The capture process's other reports (its summaries, "listening again"): a budget of their own. */
  private readonly reports: EventLog;
  /** SPA packets whose HMAC failed: one log line per source a minute (fail2ban). */
  private readonly badSpa: BadSpaLog;
  private readonly limit: CompletionLimit;
  /** Knocks from impossible sources: count and once-a-minute memory, kept across reloads (a fresh Actions each). */
  private readonly impossible: ImpossibleSources;
  /** SPA packets seen (replay cache), kept across restarts; loaded with the first config that has an SPA door. */
  private readonly spaReplay: SpaReplay;
  private spaLoaded = false;
  private readonly stateDir: string;
  readonly notifier: SystemdNotifier;
  private runtime: Runtime | undefined;
  private timers: NodeJS.Timeout[] = [];
  private startedLogged = false;
  private checkingFirewalld = false;
  private lastFirewalldProblem = '';
  private status: StatusService | undefined;
  private lock: StateDirLock | undefined;

  constructor(
    private readonly initial: Config,
    private readonly opts: DaemonOptions,
    private readonly log: Logger,
  ) {
    this.stateDir = opts.stateDir ?? '/run/knockd';
    this.interfaces = new InterfaceWatcher(opts.iface, opts.ipv4Only, log);
    this.capture = new CaptureSupervisor(log);
    this.capture.on('event', (e) =>
      dispatchEvent(e, {
        log,
        names: this.names,
        events: this.events,
        spaReplay: this.spaReplay,
        badSpa: this.badSpa,
        runtime: () => this.runtime,
        oneTimeOpened: (rt, door) => void this.nextOneTimeSequence(rt, door),
      }),
    );
    this.capture.on('listening', (iface, link, again) => this.onListening(iface, link, again));
    this.capture.on('suppressed', (s) => {
      const parts = [
        s.count ? `${s.count} "Stage 1"` : '',
        s.timeouts ? `${s.timeouts} stage-1 "sequence timeout"` : '',
      ].filter(Boolean);
      const held = parts.length ? `${parts.join(' and ')} line(s) suppressed in the last second; ` : '';
      const ev = s.evicted ? `${s.evicted} attempt(s) evicted (table full, --max-attempts); ` : '';
      this.reports.info(undefined, `${held}${ev}${s.inFlight} attempts in flight`);
    });
    this.notifier = new SystemdNotifier(log);
    this.commands = new CommandRunner(log, {
      stateFile: join(this.stateDir, 'commands.json'),
      ...(opts.maxPendingCommands !== undefined ? { maxPending: opts.maxPendingCommands } : {}),
    });
    this.spaReplay = new SpaReplay(join(this.stateDir, 'spa-replay.json'), log);
    this.notify = new NotifyHook(log);
    this.link = new FirewallLink(
      log,
      this.stateDir,
      () => void this.retryFirewalld(),
      opts.maxGrants,
      (g, why) => notifyGrantEnded(g, why, this.grantList, this.runtime, this.notify),
    );
    this.oneTime = new OneTimeDoors(log);
    this.names = new ReverseNames(opts.lookup, log);
    this.events = new EventLog(log, opts.eventLogPerSecond);
    this.reports = new EventLog(log, REPORT_LOG_PER_SECOND, Date.now, 'summary/listening');
    this.badSpa = new BadSpaLog(log);
    this.limit = new CompletionLimit(log, opts.maxCompletions);
    this.impossible = new ImpossibleSources(log);
  }

  private get doors(): RuntimeDoor[] {
    return this.runtime?.doors ?? [];
  }

  private view(): DaemonView {
    return {
      version: this.opts.version ?? '',
      iface: this.opts.iface,
      capture: this.capture,
      interfaces: this.interfaces,
      doors: this.doors,
      firewalldWait: firewalldWait(this.runtime),
      link: this.link,
      commands: this.commands,
      limit: this.limit,
      events: this.events,
      notify: this.notify,
    };
  }

  /** One line for systemd's STATUS= (shown by `systemctl status knockd`). */
  statusLine(): string {
    return statusLine(this.view());
  }

  /** What `knockd --status` shows. */
  snapshot(): Promise<StatusSnapshot> {
    return snapshot(this.view());
  }

  get grantList(): ReturnType<NonNullable<FirewallLink['grants']>['list']> {
    return this.link.grants?.list() ?? [];
  }

  /** Take the state dir, run what is due, check the config against firewalld, open the capture. Throws StartupError. */
  async start(): Promise<void> {
    try {
      this.lock = await lockStateDir(this.stateDir);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    // Stop commands first: they never wait for firewalld. Only those a door of this config could have made
    // (state-origin.ts): commands.json must not make root run anything else.
    const doors = this.initial.doors;
    await restorePendingStops(join(this.stateDir, 'commands.json'), this.commands, this.log, stopOrigin(doors));
    // Grants of the previous run are taken over whatever this config needs (they must stay closable), but
    // only those a door of this config could have made; the others are left as they are in firewalld.
    if (existsSync(join(this.stateDir, 'grants.json'))) await this.link.ensure(grantOrigin(doors));
    let built: Built;
    try {
      built = await this.build(this.initial);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    this.commit(built);
    this.refreshInterface(true);
    if (this.opts.statusService !== false) {
      // Not awaited: without a system bus (or its policy) this must not hold up start-up.
      this.status = new StatusService(this.log, () => this.snapshot());
      void this.status.start();
    }
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => this.refreshInterface(false), this.opts.addressPollMs ?? 2000));
  }

  /** SIGHUP: a valid new config replaces the old; an invalid one is reported (thrown) and changes nothing. */
  async reload(next: Config): Promise<void> {
    this.commit(await this.build(next));
    this.log.info(`configuration reloaded from ${next.file}: ${this.doors.length} door(s)`);
  }

  /**
   * Everything `config` needs, checked, without changing what runs: its doors
   * with their one-time sequences; the firewalld client and grant table made
   * (and grants.json taken over) if this is the first config to need them,
   * and its zones and services checked; the SPA replay cache loaded if this is
   * the first config with an SPA door. Throws when the config cannot run here.
   */
  private async build(config: Config): Promise<Built> {
    let oneTime: PreparedOneTime;
    try {
      oneTime = await this.oneTime.prepare(toRuntimeDoors(config.doors), config.file);
    } catch (err) {
      if (err instanceof OneTimeFileError) throw new StartupError(err.message);
      throw err;
    }
    let firewalld: FirewalldCheck | undefined;
    if (oneTime.doors.some(needsFirewalld)) {
      await this.link.ensure(grantOrigin(config.doors));
      firewalld = await this.link.check(oneTime.doors, config.file);
      if (firewalld.kind === 'refused') throw new StartupError(firewalld.problems.join('\n'));
    }
    if (oneTime.doors.some((d) => d.config.spa) && !this.spaLoaded) {
      await this.spaReplay.load();
      this.spaLoaded = true;
    }
    return { config, oneTime, firewalld };
  }

  /** Make `b` the running config: the action path, the doors the capture gets, the grants it no longer makes closed. */
  private commit(b: Built): void {
    const first = this.runtime === undefined;
    this.oneTime.commit(b.oneTime);
    if (b.firewalld?.kind === 'ok') this.link.setDefaultZone(b.firewalld.defaultZone);
    const doors = b.oneTime.doors;
    this.runtime = {
      ...b,
      doors,
      byName: new Map(doors.map((d) => [d.name, d])),
      actions: new Actions(
        this.link.grants,
        this.commands,
        this.log,
        () => this.link.defaultZone,
        this.limit,
        undefined,
        undefined,
        undefined,
        this.impossible,
        this.notify,
      ),
    };
    this.limit.keep(doors.map((d) => d.name));
    // Lock-out safety, once at start: the warnings --check gives (src/firewalld/lockout.ts).
    if (first) void logLockoutWarnings(this.log, b.config, this.link.client);
    closeGrantsNotMade(this.link.grants, this.runtime, this.log, first ? 'at start-up' : 'at reload');
    if (!first) this.applyDoors();
    logConvertedDoors(this.log, doors, this.link.defaultZone);
    const wait = firewalldWait(this.runtime);
    if (wait) this.log.warn(wait);
  }

  /** firewalld appeared, or a tick while the firewalld doors wait: check again, arm them if firewalld agrees. */
  private async retryFirewalld(): Promise<void> {
    const rt = this.runtime;
    if (rt?.firewalld === undefined || rt.firewalld.kind === 'ok' || this.checkingFirewalld) return;
    this.checkingFirewalld = true;
    try {
      const check = await this.link.check(rt.doors, rt.config.file);
      if (this.runtime !== rt) return; // a reload came in meanwhile: it checked for itself
      if (check.kind === 'refused') {
        const p = check.problems.join('\n');
        if (p !== this.lastFirewalldProblem)
          this.log.error(`firewalld is there, but the doors that need it cannot run:\n${p}`);
        this.lastFirewalldProblem = p;
      }
      if (check.kind === 'unreachable') return;
      rt.firewalld = check;
      if (check.kind !== 'ok') return;
      this.lastFirewalldProblem = '';
      this.link.setDefaultZone(check.defaultZone);
      this.log.info(
        `firewalld answers: door(s) ${rt.doors
          .filter(needsFirewalld)
          .map((d) => d.name)
          .join(', ')} armed`,
      );
      closeGrantsNotMade(this.link.grants, this.runtime, this.log, 'once firewalld answered');
      logConvertedDoors(this.log, rt.doors, this.link.defaultZone);
      this.applyDoors();
      this.maybeReady();
    } finally {
      this.checkingFirewalld = false;
    }
  }

  /** Give the capture process the armed doors (a new capture when SPA doors came or went: another snaplen). */
  private applyDoors(): void {
    const w = wire(armedDoors(this.runtime), this.interfaces.localAddrs);
    if (!this.capture.running) return;
    if (w.spa.length > 0 !== this.capture.snaplen > SNAPLEN) {
      // A handle is only opened once: the capture needs another snaplen.
      this.capture.stop();
      this.refreshInterface(false);
    } else {
      this.capture.setDoors(w.doors, w.spa, w.filter);
    }
  }

  /** Look at the interfaces; start, update or stop the capture process accordingly (interfaces.ts). */
  private refreshInterface(first: boolean): void {
    const armed = armedDoors(this.runtime);
    const look = this.interfaces.look(
      first,
      armed.some((d) => d.target === undefined),
    );
    if (look.ready.length === 0) {
      if (this.capture.running) this.capture.stop();
      return;
    }
    const w = wire(armed, look.local);
    if (!this.capture.running) {
      this.log.debug(`pcap filter: ${w.filter}`);
      this.capture.start({
        ifaces: look.ready,
        filter: w.filter,
        doors: w.doors,
        spa: w.spa,
        snaplen: w.spa.length ? SPA_SNAPLEN : SNAPLEN,
        local: look.local,
        ipv4Only: this.opts.ipv4Only,
        maxAttempts: this.opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
        stage1PerSecond: STAGE1_LOG_PER_SECOND,
        ringMB: this.opts.captureBufferMB ?? DEFAULT_RING_MB,
      });
    } else if (look.changed || this.capture.lost(look.ready).length > 0) {
      this.log.debug(`pcap filter: ${w.filter}`);
      this.capture.setLocal(look.local, w.filter, look.ready);
    }
  }

  private onListening(iface: string, link: string, again: boolean): void {
    if (!this.startedLogged) {
      this.log.info(
        `starting up, listening on ${iface} (${link}, ${this.doors.length} door(s): ${this.doors.map((d) => `${d.name} ${sequenceText({ sequence: [...d.sequence] })}`).join('; ')})`,
      );
      this.startedLogged = true;
    } else if (again) {
      this.reports.info(undefined, `listening on ${iface} again`);
    } else {
      this.reports.info(undefined, `listening on ${iface} (${link})`);
    }
    this.maybeReady();
  }

  /** READY=1 once the capture listens and no door waits for firewalld; STATUS= otherwise. */
  private maybeReady(): void {
    if (this.capture.listening && firewalldWait(this.runtime) === '') this.notifier.markReady(this.statusLine());
    else this.notifier.status(this.statusLine());
  }

  private tick(): void {
    this.events.roll();
    this.reports.roll();
    this.notifier.status(this.statusLine());
    void this.retryFirewalld();
  }

  /** A one-time door opened: its next sequence (or none: the door is left out) goes to the capture process. */
  private async nextOneTimeSequence(rt: Runtime, door: RuntimeDoor): Promise<void> {
    const next = await this.oneTime.next(door);
    if (this.runtime !== rt) return; // reloaded meanwhile: the reload read the file afresh
    rt.doors = next
      ? rt.doors.map((d) => (d.name === door.name ? next : d))
      : rt.doors.filter((d) => d.name !== door.name);
    rt.byName = new Map(rt.doors.map((d) => [d.name, d]));
    this.applyDoors();
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
    this.notify.stop();
    // Queued firewalld calls finish, but a hung firewalld does not hold up the stop: what is
    // still closing stays in grants.json, and the next start confirms it.
    if (!(await this.link.stop(SHUTDOWN_FIREWALLD_MS))) {
      this.log.warn(
        `firewalld did not answer within ${SHUTDOWN_FIREWALLD_MS / 1000} s; unfinished grants are kept in ${join(this.stateDir, 'grants.json')} for the next start`,
      );
    }
    await this.spaReplay.settled();
    await this.lock?.release();
  }
}
