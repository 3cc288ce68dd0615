/**
 * The capture process (see protocol.ts): libpcap → decode → matcher, and
 * events up to the daemon over the IPC channel. Started by CaptureSupervisor
 * with child_process.fork; exits when the channel closes.
 */
import { performance } from 'node:perf_hooks';
import { FramePipeline } from './pipeline';
import { Matcher, type DoorSpec, type MatchEvent } from '../matcher/matcher';
import { PcapCapture } from './pcap';
import type { CaptureSetup, FromCapture, ToCapture, WireDoor, WireEvent } from './protocol';
import type { LinkType } from '../decode/types';

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
  /** Interfaces that failed to open: retried on every tick. */
  private readonly failed = new Set<string>();
  private filter = '';
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
    this.pipeline = new FramePipeline(this.matcher, setup.ipv4Only);
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
    for (const iface of [...this.failed]) this.openOne(iface);
    this.matcher.sweep(this.lastTick);
    const evicted = this.matcher.stats.evicted - this.evictedBefore;
    this.evictedBefore = this.matcher.stats.evicted;
    if (this.suppressed > 0 || this.timeoutsHeld > 0 || evicted > 0) {
      send({ t: 'suppressed', count: this.suppressed, timeouts: this.timeoutsHeld, evicted, inFlight: this.matcher.size });
    }
    this.suppressed = 0;
    this.timeoutsHeld = 0;
    this.budget = this.setup.stage1PerSecond;
    // Counters go up unasked once a second: during a flood this process never gets to read a request.
    this.stats();
  }

  /** (Re)open every interface with `filter`. If none opens, exit: the supervisor restarts this process with a backoff. */
  open(filter: string): void {
    this.filter = filter;
    for (const iface of this.setup.ifaces) this.openOne(iface);
    if (this.failed.size === this.setup.ifaces.length) setImmediate(() => process.exit(3));
  }

  private openOne(iface: string): void {
    let pcap = this.pcaps.get(iface);
    if (pcap === undefined) this.pcaps.set(iface, (pcap = new PcapCapture(this.onFrame, this.setup.ringMB * 1024 * 1024)));
    try {
      const link = pcap.start(iface, this.filter);
      this.failed.delete(iface);
      send({ t: 'listening', iface, link, filter: this.filter });
    } catch (err) {
      if (!this.failed.has(iface)) send({ t: 'error', iface, message: (err as Error).message });
      this.failed.add(iface);
    }
  }

  setDoors(doors: DoorSpec[], filter: string): void {
    this.setup = { ...this.setup, doors };
    this.matcher.setDoors(doors);
    if (filter !== this.filter) this.open(filter);
  }

  /** New addresses and/or a new set of interfaces: handles of interfaces no longer listed are closed, new ones opened. */
  setLocal(local: string[], filter: string, ifaces: string[]): void {
    this.matcher.setLocalAddresses(local);
    for (const [iface, pcap] of this.pcaps) {
      if (ifaces.includes(iface)) continue;
      pcap.stop();
      this.pcaps.delete(iface);
      this.failed.delete(iface);
    }
    const added = ifaces.filter((i) => !this.pcaps.has(i));
    this.setup = { ...this.setup, ifaces };
    if (filter !== this.filter) this.open(filter);
    else for (const iface of added) this.openOne(iface);
  }

  stats(): void {
    send({ t: 'stats', stats: { frames: this.pipeline.stats, matcher: this.matcher.stats, inFlight: this.matcher.size } });
  }
}

let worker: CaptureWorker | undefined;
process.on('message', (msg: ToCapture) => {
  switch (msg.t) {
    case 'start':
      worker = new CaptureWorker(msg.setup);
      worker.open(msg.setup.filter);
      return;
    case 'doors':
      worker?.setDoors(msg.doors, msg.filter);
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
