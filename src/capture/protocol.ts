/**
 * Messages between the daemon and its capture process.
 *
 * The capture process owns libpcap, the decoders and the matcher: all the
 * per-packet work, on attacker-controlled bytes, with no privilege at all
 * (worker.ts). The daemon owns firewalld, commands, logging, the state files
 * and the lifecycle, and checks every message that comes up (validate.ts).
 * When the interface goes away the capture process exits and the daemon
 * starts a new one; a crash there costs the attempts in flight, never a
 * grant.
 *
 * This file is the wire protocol's types only: it imports nothing from
 * src/capture/, so pipeline.ts, spa-gate.ts, validate.ts and worker.ts all
 * depend on it and never on each other through it.
 */
import type { KnockProto, LinkType } from '../decode/types';
import type { DoorSpec, MatcherStats } from '../matcher/matcher';
import type { SpaHmacType } from '../model';

/** The unprivileged account the capture process switches to (user.ts finds it). */
export interface CaptureUser {
  name: string;
  uid: number;
  gid: number;
}

export interface FrameStats {
  frames: number;
  /** Truncated or inconsistent frames: ignored and counted. */
  malformed: number;
  /** Well-formed frames that cannot be knocks (not TCP/UDP, no door's port, IPv6 with -4). */
  ignored: number;
  /** Handed to the matcher. */
  knocks: number;
}

export interface SpaGateStats {
  /** UDP datagrams to an SPA port. */
  seen: number;
  /** Refused before any key was used (length, alphabet, prefix, cut short by the capture). */
  malformed: number;
  /** No door's HMAC key verified them. */
  unauthenticated: number;
  forwarded: number;
  /** Authenticated but over the forwarding budget. */
  dropped: number;
}

/** Default size of the capture ring (--capture-buffer), MiB; see PcapCapture. */
export const DEFAULT_RING_MB = 8;

/**
 * Bytes of each packet libpcap keeps: every header a knock can have (SLL or
 * Ethernet with stacked VLAN tags, IPv4 with options or IPv6 with ~170 bytes
 * of extension headers, the TCP flags or UDP ports). Longer header chains are
 * cut short and counted as malformed. In immediate mode libpcap's ring has
 * one slot of this size per packet: at cap's default 65535 a slot took
 * 128 KiB on GRO/TSO interfaces, at 256 it takes 336 bytes.
 */
export const SNAPLEN = 256;

/**
 * With SPA doors: an SPA payload is at most 399 bytes (fwknopd refuses 400
 * and more for Rijndael), + UDP 8 + IPv4 with options 60 (IPv6 40) +
 * Ethernet with two VLAN tags 22 = 489. The ring then holds about half as
 * many packets per MiB; only SPA configs pay for it.
 */
export const SPA_SNAPLEN = 512;

/** Plain-data door (what the matcher needs), as sent to the capture process. */
export type WireDoor = DoorSpec & {
  /** A One_Time_Sequences door: the capture process drops it the moment it opens, until the daemon sends its next sequence. */
  oneTime?: boolean;
};

/** What the capture process gets of an SPA door: its port and HMAC key, never its encryption key (see spa-gate.ts). */
export interface WireSpaDoor {
  name: string;
  port: number;
  hmacKeyBase64: string;
  hmacType: SpaHmacType;
}

export interface CaptureSetup {
  /** The interfaces to capture on, one pcap handle each (one matcher, one attempt table for all). */
  ifaces: string[];
  /** The unprivileged account the capture process switches to after opening the socket (user.ts). */
  user: CaptureUser;
  filter: string;
  doors: WireDoor[];
  spa: WireSpaDoor[];
  local: string[];
  /** Bytes of each packet libpcap keeps (see pcap.ts). */
  snaplen: number;
  ipv4Only: boolean;
  maxAttempts: number;
  /** libpcap kernel ring, MiB (--capture-buffer). */
  ringMB: number;
  /** At most this many "Stage 1" events a second reach the daemon (a spoofed flood must not flood the log). */
  stage1PerSecond: number;
}

export type ToCapture =
  | { t: 'start'; setup: CaptureSetup }
  /** New doors and filter (config reload): attempts of unchanged doors are kept. */
  | { t: 'doors'; doors: WireDoor[]; spa: WireSpaDoor[]; filter: string }
  /** The interfaces' addresses changed, or the set of interfaces ready to capture on. */
  | { t: 'local'; local: string[]; filter: string; ifaces: string[] }
  | { t: 'stats' };

/** A matcher event with the door by name (evictions are only counted, see `suppressed`). */
export type WireEvent =
  | { type: 'stage'; door: string; src: string; family: 4 | 6; stage: number }
  | { type: 'open' | 'close'; door: string; src: string; family: 4 | 6 }
  | { type: 'timeout'; door: string; src: string; stage: number }
  | { type: 'spoiled'; door: string; src: string; stage: number; proto: KnockProto; port: number }
  /** A datagram to an SPA door's port whose HMAC verified; `payload` is its bytes (latin1), for the daemon to decrypt and judge. */
  | { type: 'spa'; door: string; src: string; family: 4 | 6; payload: string }
  /** A datagram to an SPA port (named by its first door) that no door's HMAC key verified; bounded by SPA_BAD_REPORTS_PER_SECOND. */
  | { type: 'spa-bad'; door: string; src: string; family: 4 | 6 };

export interface CaptureStats {
  frames: FrameStats;
  matcher: MatcherStats;
  inFlight: number;
  spa?: SpaGateStats;
}

export type FromCapture =
  | { t: 'listening'; iface: string; link: LinkType; filter: string }
  /** An interface could not be opened (the capture process retries it every second while others capture). */
  | { t: 'error'; iface: string; message: string }
  | { t: 'event'; e: WireEvent }
  /** Once a second when stage-1 lines were held back or attempts evicted (a flood). */
  | { t: 'suppressed'; count: number; timeouts: number; evicted: number; inFlight: number }
  | { t: 'stats'; stats: CaptureStats };
