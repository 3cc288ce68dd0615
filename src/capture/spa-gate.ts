/**
 * The capture process's half of Single Packet Authorization: it holds only
 * each SPA door's HMAC key, never its encryption key. A UDP datagram to an
 * SPA port goes up to the daemon only if its HMAC verifies (fwknopd's first
 * check, constant-time, before any decryption): a flood of garbage or of
 * valid-looking packets costs one HMAC each here and nothing in the daemon.
 * The daemon decrypts, checks the replay cache, the timestamp and the access
 * list, and grants: whoever takes over this unprivileged process can forward
 * packets, but cannot make one the daemon accepts without the encryption key.
 */
import { formatAddress } from '../decode/address';
import { IPPROTO_UDP, type Packet } from '../decode/types';
import { precheckSpaPayload, verifySpaHmac } from '../spa/decode';
import { makeSpaKeys } from '../spa/keys';
import type { SpaKeys } from '../model';
import type { SpaGateStats, WireEvent, WireSpaDoor } from './protocol';

/** At most this many authenticated packets a second go up (only key holders make them; a replay storm is bounded too). */
export const SPA_FORWARD_PER_SECOND = 100;
/**
 * At most this many "bad SPA packet" reports (`spa-bad`: a packet to this
 * host whose HMAC no door's key verified, with its source) go up a second;
 * the rest are only counted (`unauthenticated`). The daemon logs at most one
 * line per source a minute of them (src/daemon/bad-spa.ts), for fail2ban.
 */
export const SPA_BAD_REPORTS_PER_SECOND = 20;

interface GateDoor {
  name: string;
  keys: SpaKeys;
}

export class SpaGate {
  private readonly byPort = new Map<number, GateDoor[]>();
  private budget = SPA_FORWARD_PER_SECOND;
  private badBudget = SPA_BAD_REPORTS_PER_SECOND;
  readonly stats: SpaGateStats = { seen: 0, malformed: 0, unauthenticated: 0, forwarded: 0, dropped: 0 };

  constructor(
    doors: readonly WireSpaDoor[],
    private readonly emit: (e: WireEvent) => void,
    private readonly isLocal: (addr: string) => boolean,
  ) {
    for (const d of doors) {
      // Only the HMAC key crosses into this process: the encryption key is left empty.
      const keys = makeSpaKeys(Buffer.alloc(0), Buffer.from(d.hmacKeyBase64, 'base64'), d.hmacType);
      this.byPort.set(d.port, [...(this.byPort.get(d.port) ?? []), { name: d.name, keys }]);
    }
  }

  watches(proto: number, port: number): boolean {
    return proto === IPPROTO_UDP && this.byPort.has(port);
  }

  /** Once a second. */
  refill(): void {
    this.budget = SPA_FORWARD_PER_SECOND;
    this.badBudget = SPA_BAD_REPORTS_PER_SECOND;
  }

  /** A decoded UDP datagram to an SPA port. */
  handle(p: Packet): void {
    this.stats.seen++;
    const start = p.l4Off + 8;
    const udpLen = (p.buf[p.l4Off + 4] << 8) | p.buf[p.l4Off + 5];
    // The whole payload must have been captured (snaplen): a cut packet is never judged on its first bytes.
    if (udpLen < 8 || p.l4Off + udpLen > p.l4End) {
      this.stats.malformed++;
      return;
    }
    const payload = p.buf.subarray(start, p.l4Off + udpLen);
    if (precheckSpaPayload(payload) !== undefined) {
      this.stats.malformed++;
      return;
    }
    const doors = this.byPort.get(p.dport)!;
    const door = doors.find((d) => verifySpaHmac(payload, d.keys) !== undefined);
    if (door === undefined) {
      this.stats.unauthenticated++;
      if (this.badBudget > 0 && this.isLocal(formatAddress(p.buf, p.dstOff, p.family))) {
        this.badBudget--;
        // Named by the port's first door: no key verified, so which door it was meant for is unknown.
        this.emit({
          type: 'spa-bad',
          door: doors[0].name,
          src: formatAddress(p.buf, p.srcOff, p.family),
          family: p.family,
        });
      }
      return;
    }
    const dst = formatAddress(p.buf, p.dstOff, p.family);
    if (!this.isLocal(dst)) return;
    if (this.budget <= 0) {
      this.stats.dropped++;
      return;
    }
    this.budget--;
    this.stats.forwarded++;
    this.emit({
      type: 'spa',
      door: door.name,
      src: formatAddress(p.buf, p.srcOff, p.family),
      family: p.family,
      payload: payload.toString('latin1'),
    });
  }
}
