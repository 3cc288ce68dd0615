/**
 * Messages between the daemon and its capture process.
 *
 * The capture process owns libpcap, the decoders and the matcher: all the
 * per-packet work. The daemon owns firewalld, commands, logging and the
 * lifecycle. libpcap (through `cap`) aborts the whole process when the
 * interface goes down under it, so it lives in a child the daemon restarts;
 * a crash there costs the attempts in flight, never a grant.
 */
import type { LinkType } from '../decode/types';
import type { DoorSpec, MatcherStats } from '../matcher/matcher';
import type { FrameStats } from './pipeline';
import type { KnockProto } from '../decode/types';

/** Default size of the capture ring (--capture-buffer), MiB; see PcapCapture. */
export const DEFAULT_RING_MB = 8;

/** Plain-data door (what the matcher needs), as sent to the capture process. */
export type WireDoor = DoorSpec & {
  /** A One_Time_Sequences door: the capture process drops it the moment it opens, until the daemon sends its next sequence. */
  oneTime?: boolean;
};

export interface CaptureSetup {
  /** The interfaces to capture on, one pcap handle each (one matcher, one attempt table for all). */
  ifaces: string[];
  filter: string;
  doors: WireDoor[];
  local: string[];
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
  | { t: 'doors'; doors: WireDoor[]; filter: string }
  /** The interfaces' addresses changed, or the set of interfaces ready to capture on. */
  | { t: 'local'; local: string[]; filter: string; ifaces: string[] }
  | { t: 'stats' };

/** A matcher event with the door by name (evictions are only counted, see `suppressed`). */
export type WireEvent =
  | { type: 'stage'; door: string; src: string; family: 4 | 6; stage: number }
  | { type: 'open' | 'close'; door: string; src: string; family: 4 | 6 }
  | { type: 'timeout'; door: string; src: string; stage: number }
  | { type: 'spoiled'; door: string; src: string; stage: number; proto: KnockProto; port: number };

export interface CaptureStats {
  frames: FrameStats;
  matcher: MatcherStats;
  inFlight: number;
}

export type FromCapture =
  | { t: 'listening'; iface: string; link: LinkType; filter: string }
  /** An interface could not be opened (the capture process retries it every second while others capture). */
  | { t: 'error'; iface: string; message: string }
  | { t: 'event'; e: WireEvent }
  /** Once a second when stage-1 lines were held back or attempts evicted (a flood). */
  | { t: 'suppressed'; count: number; timeouts: number; evicted: number; inFlight: number }
  | { t: 'stats'; stats: CaptureStats };
