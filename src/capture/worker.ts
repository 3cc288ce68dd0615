/**
 * The capture process (see protocol.ts): libpcap → decode → matcher, and
 * events up to the daemon over the IPC channel. Started by CaptureSupervisor
 * with child_process.fork; exits when the channel closes.
 *
 * It starts as root (the daemon's credentials), opens the packet socket,
 * attaches the filter and locks it (SO_LOCK_FILTER), and then, before it
 * reads a packet, gives up every privilege for good (Cap.dropPrivileges: the
 * unprivileged capture user, no groups, no capabilities, no_new_privs, and a
 * seccomp sandbox: no execve, no new socket, no frame sent, no new filter,
 * no io_uring; vendor/README.md). A new filter, like an interface to
 * reopen, is the daemon's job: it starts a new capture process (the socket
 * is never reopened or refiltered here).
 *
 * KNOCKD_SANDBOX_PROBE=1 in its environment (tests only: the daemon removes
 * it from the environment it gives this process, so only a root test
 * harness that forks this file itself can set it) makes it try each call the
 * sandbox refuses right after the drop and report the errnos.
 */
import { performance } from 'node:perf_hooks';
import { Cap } from 'cap';
import { FramePipeline } from './pipeline';
import { Matcher, type DoorSpec, type MatchEvent } from '../matcher/matcher';
import { PcapCapture } from './pcap';
import { SpaGate } from './spa-gate';
import type { CaptureSetup, FromCapture, ToCapture, WireDoor, WireEvent } from './protocol';
import type { LinkType } from '../decode/types';

/** The daemon. */
const PARENT = process.ppid;

function send(msg: FromCapture): void {
  if (process.connected) process.send!(msg);
}

function toWire(e: MatchEvent): WireEvent {
  const door = e.door.name;
  switch (e.type) {
    case 'stage':
      return { type: 'stage', door, src: e.src, family: e.family, stage: e.stage };
    case 'open':
    case 'close':
      return { type: e.type, door, src: e.src, family: e.family };
    case 'timeout':
      return { type: 'timeout', door, src: e.src, stage: e.stage };
    case 'spoiled':
      return { type: 'spoiled', door, src: e.src, stage: e.stage, proto: e.proto, port: e.port };
  }
}

class CaptureWorker {
  private readonly matcher: Matcher;
  private readonly pipeline: FramePipeline;
  /** One pcap handle per interface, all feeding the one pipeline (one attempt table). */
  private readonly pcaps = new Map<string, PcapCapture>();
  /** Link type of each open interface. */
  private readonly links = new Map<string, LinkType>();
  private budget: number;
  private suppressed = 0;
  private timeoutsHeld = 0;
  /** `matcher.stats.evicted` at the last tick. */
  private evictedBefore = 0;
  private lastTick = performance.now();

  constructor(private setup: CaptureSetup) {
    this.budget = setup.stage1PerSecond;
    this.matcher = new Matcher(setup.doors, (e) => this.onEvent(e), {
      maxAttempts: setup.maxAttempts,
      admitStage1: (type) => this.admitStage1(type),
    });
    this.matcher.setLocalAddresses(setup.local);
    this.pipeline = new FramePipeline(this.matcher, setup.ipv4Only, this.spaGate(setup));
    setInterval(() => {
      if (performance.now() - this.lastTick >= 1000) this.tick();
    }, 1000);
  }

  /**
   * Stage-1 traffic is what a spoofed flood produces: at most
   * `stage1PerSecond` such events a second are made and sent; the rest are
   * only counted (and the matcher does not even build them).
   */
  private admitStage1(type: 'stage' | 'timeout'): boolean {
    if (this.budget > 0) {
      this.budget--;
      return true;
    }
    if (type === 'stage') this.suppressed++;
    else this.timeoutsHeld++;
    return false;
  }

  private onEvent(e: MatchEvent): void {
    if ((e.type === 'open' || e.type === 'close') && (e.door as WireDoor).oneTime) {
      // Used up: no second opening with the same sequence, not even by a packet already in the queue.
      const doors = this.setup.doors.filter((d) => d.name !== e.door.name);
      this.setup = { ...this.setup, doors };
      queueMicrotask(() => this.matcher.setDoors(doors));
    }
    send({ t: 'event', e: toWire(e) });
  }

  private readonly onFrame = (link: LinkType, buf: Buffer, len: number): void => {
    const now = performance.now();
    this.pipeline.onFrame(link, buf, len, now);
    // Under a flood `cap` keeps reading until the ring is empty and the event
    // loop (timers included) does not run: do the once-a-second work from here.
    if (now - this.lastTick >= 1000) this.tick();
  };

  private tick(): void {
    this.lastTick = performance.now();
    this.matcher.sweep(this.lastTick);
    const evicted = this.matcher.stats.evicted - this.evictedBefore;
    this.evictedBefore = this.matcher.stats.evicted;
    if (this.suppressed > 0 || this.timeoutsHeld > 0 || evicted > 0) {
      send({
        t: 'suppressed',
        count: this.suppressed,
        timeouts: this.timeoutsHeld,
        evicted,
        inFlight: this.matcher.size,
      });
    }
    this.suppressed = 0;
    this.timeoutsHeld = 0;
    this.budget = this.setup.stage1PerSecond;
    this.pipeline.spa?.refill();
    // Counters go up unasked once a second: during a flood this process never gets to read a request.
    this.stats();
  }

  /**
   * Open every interface, then drop every privilege; only then do packets
   * flow (the event loop reads them). An interface that does not open is
   * reported (the others capture); if none opens, exit: the daemon restarts
   * this process with a backoff, and it alone (with privilege) can open a
   * socket again, so it also restarts it when an interface comes back.
   */
  open(): void {
    for (const iface of this.setup.ifaces) {
      const pcap = new PcapCapture(
        this.onFrame,
        this.setup.ringMB * 1024 * 1024,
        (err) => this.lost(iface, err.message),
        this.setup.snaplen,
      );
      try {
        this.links.set(iface, pcap.start(iface, this.setup.filter));
        this.pcaps.set(iface, pcap);
      } catch (err) {
        send({ t: 'error', iface, message: (err as Error).message });
      }
    }
    if (this.pcaps.size === 0) {
      setImmediate(() => process.exit(3));
      return;
    }
    try {
      const fds = [...this.pcaps.values()].map((p) => p.lockFilter());
      Cap.dropPrivileges(this.setup.user.uid, this.setup.user.gid, fds);
      if (process.env.KNOCKD_SANDBOX_PROBE === '1' && process.send)
        process.send({ t: 'sandbox-probe', results: fds.map((fd) => Cap.sandboxProbe(fd)) });
      // It dies with the daemon from now on (PR_SET_PDEATHSIG): unless the daemon is already gone.
      if (process.ppid !== PARENT) process.exit(0);
    } catch (err) {
      this.fail(
        `capture process could not drop its privileges (to ${this.setup.user.name}): ${(err as Error).message}`,
      );
      return;
    }
    for (const [iface, link] of this.links) send({ t: 'listening', iface, link, filter: this.setup.filter });
  }

  /** libpcap lost an interface (link down, interface removed): close it; with none left, exit. */
  private lost(iface: string, message: string): void {
    this.pcaps.get(iface)?.stop();
    this.pcaps.delete(iface);
    send({ t: 'error', iface, message });
    if (this.pcaps.size === 0) setImmediate(() => process.exit(3));
  }

  /** Tell the daemon why and exit: it decides when to try again (it restarts this process, with privilege). */
  private fail(message: string): void {
    for (const pcap of this.pcaps.values()) pcap.stop();
    this.pcaps.clear();
    for (const iface of this.setup.ifaces) send({ t: 'error', iface, message });
    setImmediate(() => process.exit(3));
  }

  /** The filter is locked: a new one needs a new capture process (the daemon starts one instead of asking this). */
  private refilter(filter: string): void {
    if (filter === this.setup.filter) return;
    this.fail('the capture filter changed, and it is locked in this process: a new capture process applies it');
  }

  private spaGate(setup: CaptureSetup): SpaGate | undefined {
    if (setup.spa.length === 0) return undefined;
    return new SpaGate(
      setup.spa,
      (e) => send({ t: 'event', e }),
      (addr) => this.setup.local.includes(addr),
    );
  }

  setDoors(doors: DoorSpec[], spa: CaptureSetup['spa'], filter: string): void {
    this.setup = { ...this.setup, doors, spa };
    this.matcher.setDoors(doors);
    this.pipeline.spa = this.spaGate(this.setup);
    this.refilter(filter);
  }

  /**
   * New addresses (and the interfaces the daemon has ready): handles of
   * interfaces no longer listed are closed; an interface this process does
   * not have cannot be opened here (no privilege): the daemon restarts it.
   */
  setLocal(local: string[], filter: string, ifaces: string[]): void {
    this.setup = { ...this.setup, local };
    this.matcher.setLocalAddresses(local);
    for (const [iface, pcap] of this.pcaps) {
      if (ifaces.includes(iface)) continue;
      pcap.stop();
      this.pcaps.delete(iface);
    }
    if (this.pcaps.size === 0) {
      setImmediate(() => process.exit(3));
      return;
    }
    this.refilter(filter);
  }

  stats(): void {
    send({
      t: 'stats',
      stats: {
        frames: this.pipeline.stats,
        matcher: this.matcher.stats,
        inFlight: this.matcher.size,
        ...(this.pipeline.spa ? { spa: this.pipeline.spa.stats } : {}),
      },
    });
  }
}

let worker: CaptureWorker | undefined;
process.on('message', (msg: ToCapture) => {
  switch (msg.t) {
    case 'start':
      if (worker) return;
      worker = new CaptureWorker(msg.setup);
      worker.open();
      return;
    case 'doors':
      worker?.setDoors(msg.doors, msg.spa, msg.filter);
      return;
    case 'local':
      worker?.setLocal(msg.local, msg.filter, msg.ifaces);
      return;
    case 'stats':
      worker?.stats();
      return;
  }
});
// The daemon went away: so do we.
process.on('disconnect', () => process.exit(0));
// SIGUSR1 would start node's inspector (a debugger port) in this process;
// with a handler of our own it does not. Any process of the capture user
// may send it signals.
process.on('SIGUSR1', () => undefined);
