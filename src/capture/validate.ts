/**
 * Messages from the capture process are untrusted input. That process parses
 * every packet an attacker sends and runs without privilege (worker.ts), so
 * an attacker who finds a bug in it owns it and can write anything on its
 * IPC channel. The daemon takes nothing from it on trust: every field of
 * every message is checked here (a known door, a canonical address of the
 * door's family, a stage within the door's sequence, a port, counters that
 * are non-negative integers) and a message that fails is dropped with the
 * reason; nothing else is lost.
 */
import { canonicalAddress } from '../decode/address';
import type { LinkType } from '../decode/types';
import type { MatcherStats } from '../matcher/matcher';
import type { CaptureStats, FrameStats, FromCapture, SpaGateStats, WireDoor, WireEvent, WireSpaDoor } from './protocol';
import { GPG_MIN_PAYLOAD, MIN_SPA_PAYLOAD } from '../spa/decode';

/** The doors the daemon gave the capture process: knock doors and SPA doors, by name. */
export type KnownDoors = ReadonlyMap<string, WireDoor | WireSpaDoor>;
const isSpa = (d: WireDoor | WireSpaDoor): d is WireSpaDoor => 'hmacType' in d;

export type Checked = { ok: true; msg: FromCapture } | { ok: false; why: string };

const LINK_TYPES: readonly string[] = ['ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL'] satisfies readonly LinkType[];
/**
 * Every key of T, checked by the compiler: a counter added to FrameStats or
 * MatcherStats and not listed here is a build error, not a capture process
 * whose every stats message is refused at run time.
 */
const allKeys =
  <T>() =>
  <const K extends readonly (keyof T)[]>(k: K & ([keyof T] extends [K[number]] ? unknown : never)): K =>
    k;

const FRAME_STATS = allKeys<FrameStats>()(['frames', 'malformed', 'ignored', 'knocks']);
const SPA_STATS = allKeys<SpaGateStats>()(['seen', 'malformed', 'unauthenticated', 'forwarded', 'dropped']);
const MATCHER_STATS = allKeys<MatcherStats>()([
  'candidates',
  'ignored',
  'stages',
  'completed',
  'spoiled',
  'timeouts',
  'evicted',
  'retransmits',
  'repeats',
]);
/** Longest error text taken from the capture process (libpcap's are < 256). */
const MAX_TEXT = 512;
/** Longest filter text (knockd builds it: a few dozen bytes a door). */
const MAX_FILTER = 64 * 1024;

class Invalid extends Error {}

function fail(why: string): never {
  throw new Invalid(why);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Exactly these keys (no more, none missing). */
function keys(o: Record<string, unknown>, what: string, expected: readonly string[]): void {
  const got = Object.keys(o);
  for (const k of got) if (!expected.includes(k)) fail(`${what}: unexpected field ${JSON.stringify(k.slice(0, 40))}`);
  for (const k of expected) if (!(k in o)) fail(`${what}: missing field ${k}`);
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} is not a count: ${show(v)}`);
  return v;
}

function text(v: unknown, what: string, max: number): string {
  if (typeof v !== 'string') fail(`${what} is not a string`);
  if (v.length > max) fail(`${what} is longer than ${max} characters`);
  return v;
}

/** A short printable rendering of a bad value, for the log line. */
export function show(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v));
  } catch {
    s = typeof v;
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The source address: canonical text of a family the door can be knocked from. */
function source(v: unknown, door: WireDoor, family: 4 | 6 | undefined, ipv4Only: boolean): string {
  if (typeof v !== 'string' || v.length > 45 || canonicalAddress(v) !== v)
    fail(`src is not a canonical IP address: ${show(v)}`);
  const f = v.includes(':') ? 6 : 4;
  if (family !== undefined && family !== f) fail(`src ${v} is not an IPv${family} address`);
  if (f === 6 && ipv4Only) fail(`src ${v} is IPv6, but knockd runs with -4`);
  if (door.target !== undefined && (door.target.includes(':') ? 6 : 4) !== f)
    fail(`src ${v} cannot knock on door ${door.name} (target ${door.target})`);
  return v;
}

function family(v: unknown): 4 | 6 {
  if (v !== 4 && v !== 6) fail(`family is not 4 or 6: ${show(v)}`);
  return v;
}

/**
 * A stage number for `door`: a stage reached is 1 .. sequence length (the
 * last one comes just before the open/close event); the stage of an attempt
 * that timed out or was spoiled is 1 .. sequence length - 1.
 */
function stage(v: unknown, door: WireDoor, reached: boolean): number {
  const max = door.sequence.length - (reached ? 0 : 1);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    fail(`stage ${show(v)} is outside 1..${max} for door ${door.name}`);
  }
  return v;
}

function event(e: unknown, doors: KnownDoors, ipv4Only: boolean): WireEvent {
  if (!isRecord(e)) fail('event is not an object');
  const name = e.door;
  if (typeof name !== 'string') fail('event door is not a string');
  const known = doors.get(name);
  if (known === undefined) fail(`unknown door ${show(name)}`);
  if (isSpa(known)) {
    if (e.type !== 'spa' && e.type !== 'spa-bad') fail(`door ${name} is an SPA door: no ${show(e.type)} events`);
    keys(
      e,
      `${e.type} event`,
      e.type === 'spa' ? ['type', 'door', 'src', 'family', 'payload'] : ['type', 'door', 'src', 'family'],
    );
    const f = family(e.family);
    const src = e.src;
    if (
      typeof src !== 'string' ||
      src.length > 45 ||
      canonicalAddress(src) !== src ||
      (src.includes(':') ? 6 : 4) !== f
    )
      fail(`src is not a canonical IPv${f} address: ${show(src)}`);
    if (f === 6 && ipv4Only) fail(`src ${src} is IPv6, but knockd runs with -4`);
    if (e.type === 'spa-bad') return { type: 'spa-bad', door: name, src, family: f };
    const p = e.payload;
    // What the gate forwards passed fwknopd's outer checks: base64 text of an accepted length.
    if (
      typeof p !== 'string' ||
      p.length < MIN_SPA_PAYLOAD ||
      p.length >= GPG_MIN_PAYLOAD ||
      !/^[A-Za-z0-9+/]+$/.test(p)
    )
      fail("spa payload is not base64 text of an SPA packet's length");
    return { type: 'spa', door: name, src, family: f, payload: p };
  }
  const door = known;
  switch (e.type) {
    case 'stage': {
      keys(e, 'stage event', ['type', 'door', 'src', 'family', 'stage']);
      const f = family(e.family);
      return {
        type: 'stage',
        door: name,
        src: source(e.src, door, f, ipv4Only),
        family: f,
        stage: stage(e.stage, door, true),
      };
    }
    case 'open':
    case 'close': {
      keys(e, `${e.type} event`, ['type', 'door', 'src', 'family']);
      if (e.type !== door.action)
        fail(`door ${name} is a${door.action === 'open' ? 'n open' : ' close'} door, not ${e.type}`);
      const f = family(e.family);
      return { type: e.type, door: name, src: source(e.src, door, f, ipv4Only), family: f };
    }
    case 'timeout': {
      keys(e, 'timeout event', ['type', 'door', 'src', 'stage']);
      return {
        type: 'timeout',
        door: name,
        src: source(e.src, door, undefined, ipv4Only),
        stage: stage(e.stage, door, false),
      };
    }
    case 'spoiled': {
      keys(e, 'spoiled event', ['type', 'door', 'src', 'stage', 'proto', 'port']);
      const proto = e.proto;
      if (proto !== 6 && proto !== 17) fail(`proto is not 6 (tcp) or 17 (udp): ${show(proto)}`);
      const port = e.port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)
        fail(`port is not 0..65535: ${show(port)}`);
      return {
        type: 'spoiled',
        door: name,
        src: source(e.src, door, undefined, ipv4Only),
        stage: stage(e.stage, door, false),
        proto,
        port,
      };
    }
    default:
      fail(`unknown event type ${show(e.type)}`);
  }
}

function stats(s: unknown): CaptureStats {
  if (!isRecord(s)) fail('stats is not an object');
  const spa = s.spa;
  keys(s, 'stats', spa === undefined ? ['frames', 'matcher', 'inFlight'] : ['frames', 'matcher', 'inFlight', 'spa']);
  const f = s.frames;
  const m = s.matcher;
  if (!isRecord(f) || !isRecord(m)) fail('stats.frames/matcher is not an object');
  keys(f, 'stats.frames', FRAME_STATS);
  keys(m, 'stats.matcher', MATCHER_STATS);
  const frames = {} as FrameStats;
  for (const k of FRAME_STATS) frames[k] = count(f[k], `stats.frames.${k}`);
  const matcher = {} as MatcherStats;
  for (const k of MATCHER_STATS) matcher[k] = count(m[k], `stats.matcher.${k}`);
  const out: CaptureStats = { frames, matcher, inFlight: count(s.inFlight, 'stats.inFlight') };
  if (spa !== undefined) {
    if (!isRecord(spa)) fail('stats.spa is not an object');
    keys(spa, 'stats.spa', SPA_STATS);
    const g = {} as SpaGateStats;
    for (const k of SPA_STATS) g[k] = count(spa[k], `stats.spa.${k}`);
    out.spa = g;
  }
  return out;
}

/** One of the interfaces the daemon gave the capture process. */
function iface(v: unknown, ifaces: readonly string[]): string {
  if (typeof v !== 'string' || !ifaces.includes(v)) fail(`iface ${show(v)} is not one the capture process was given`);
  return v;
}

/**
 * Check one message from the capture process against what the daemon told
 * it (`doors`: the doors it currently has, by name; `ipv4Only`: -4). Returns
 * a fresh, fully typed copy of the message, or why it was refused.
 */
export function checkFromCapture(m: unknown, doors: KnownDoors, ipv4Only: boolean, ifaces: readonly string[]): Checked {
  try {
    if (!isRecord(m)) fail('message is not an object');
    switch (m.t) {
      case 'listening': {
        keys(m, 'listening', ['t', 'iface', 'link', 'filter']);
        if (typeof m.link !== 'string' || !LINK_TYPES.includes(m.link)) fail(`unknown link type ${show(m.link)}`);
        return {
          ok: true,
          msg: {
            t: 'listening',
            iface: iface(m.iface, ifaces),
            link: m.link as LinkType,
            filter: text(m.filter, 'filter', MAX_FILTER),
          },
        };
      }
      case 'error': {
        keys(m, 'error', ['t', 'iface', 'message']);
        // Printable text only: it goes into the log and STATUS=.
        const message = text(m.message, 'error message', MAX_TEXT).replace(/[^\x20-\x7e]/g, '?');
        return { ok: true, msg: { t: 'error', iface: iface(m.iface, ifaces), message } };
      }
      case 'event':
        keys(m, 'event', ['t', 'e']);
        return { ok: true, msg: { t: 'event', e: event(m.e, doors, ipv4Only) } };
      case 'suppressed':
        keys(m, 'suppressed', ['t', 'count', 'timeouts', 'evicted', 'inFlight']);
        return {
          ok: true,
          msg: {
            t: 'suppressed',
            count: count(m.count, 'count'),
            timeouts: count(m.timeouts, 'timeouts'),
            evicted: count(m.evicted, 'evicted'),
            inFlight: count(m.inFlight, 'inFlight'),
          },
        };
      case 'stats':
        keys(m, 'stats', ['t', 'stats']);
        return { ok: true, msg: { t: 'stats', stats: stats(m.stats) } };
      default:
        fail(`unknown message type ${show(m.t)}`);
    }
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, why: err.message };
    throw err;
  }
}

/** Refused messages logged a second at most (a hostile capture process must not flood the log); the rest are counted. */
export const REFUSED_LINES_PER_SECOND = 5;

/**
 * The daemon's side of the channel: every message goes through `admit`,
 * which returns the checked copy, or undefined after logging why it was
 * refused (at most REFUSED_LINES_PER_SECOND lines a second; the next line
 * says how many were not logged).
 */
export class MessageGate {
  private second = 0;
  private linesThisSecond = 0;
  private unlogged = 0;

  constructor(
    private readonly logRefused: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  admit(raw: unknown, doors: KnownDoors, ipv4Only: boolean, ifaces: readonly string[]): FromCapture | undefined {
    const c = checkFromCapture(raw, doors, ipv4Only, ifaces);
    if (c.ok) return c.msg;
    const second = Math.floor(this.now() / 1000);
    if (second !== this.second) {
      this.second = second;
      this.linesThisSecond = 0;
    }
    if (this.linesThisSecond >= REFUSED_LINES_PER_SECOND) {
      this.unlogged++;
      return undefined;
    }
    this.linesThisSecond++;
    const more = this.unlogged > 0 ? ` (and ${this.unlogged} more not logged)` : '';
    this.unlogged = 0;
    this.logRefused(`capture process sent an invalid message, dropped: ${c.why}${more}`);
    return undefined;
  }
}
