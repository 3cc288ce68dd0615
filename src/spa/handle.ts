/**
 * One SPA packet, start to verdict, in fwknopd's order (incoming_spa.c):
 *
 *  1. precheck (length, prefix, alphabet)             – no key used
 *  2. doors whose spa_source holds the packet source  – fwknopd's SOURCE match
 *  3. replay lookup                                   – SHA-256 of the payload
 *  4. per door in config order: HMAC, decrypt, parse  – first success wins
 *  5. replay insert (authentic packets only, before the policy checks, so a
 *     stale but authentic packet is remembered too)
 *  6. access check of that door (age, allow IP, type, ports, timeout)
 *
 * Pure apart from the replay cache it is given; the clock is a parameter.
 */
import type { SpaDoor } from '../model';
import { checkSpaAccess, SPA_MAX_PACKET_AGE } from './access';
import { sourceAllowed } from './cidr';
import { decodeSpaAfterPrecheck, precheckSpaPayload } from './decode';
import type { ReplayCache } from './replay';
import { spaReplayDigest } from './replay';
import { refuse } from './types';
import type { SpaGrant, SpaMessage, SpaRefusal, SpaRefusalCode } from './types';

export type SpaVerdict =
  | { ok: true; door: string; grant: SpaGrant; message: SpaMessage }
  | (SpaRefusal & {
      /** The door that authenticated the packet, or the only candidate door; absent when the refusal precedes any door. */
      door?: string;
      /** Set once the packet was authenticated (it is then in the replay cache). */
      message?: SpaMessage;
    });

/** How far a refusal got: the most advanced one among the doors is reported. */
const STAGE: Partial<Record<SpaRefusalCode, number>> = { hmac: 1, decrypt: 2, format: 3, digest: 3 };

/**
 * @param payload UDP payload bytes
 * @param source  the packet's source address (text, as decode/address.ts formats it)
 * @param doors   the SPA doors listening on the packet's destination port, in config order
 * @param replay  the daemon's replay cache (checked and updated here)
 * @param nowMs   Unix time in ms
 */
export function handleSpaPacket(
  payload: Buffer,
  source: string,
  doors: readonly SpaDoor[],
  replay: ReplayCache,
  nowMs: number,
  maxAge = SPA_MAX_PACKET_AGE,
): SpaVerdict {
  const pre = precheckSpaPayload(payload);
  if (pre !== undefined) return pre;

  const candidates = doors.filter((d) => sourceAllowed(d.sources, source));
  if (candidates.length === 0) {
    return withDoor(refuse('source', `no SPA door on this port accepts packets from ${source} (spa_source)`), doors);
  }

  const digest = spaReplayDigest(payload);
  if (replay.has(digest, nowMs))
    return withDoor(refuse('replay', `replayed SPA packet from ${source} (digest already seen)`), candidates);

  let best: SpaRefusal | undefined;
  let bestDoor: SpaDoor | undefined;
  for (const door of candidates) {
    const r = decodeSpaAfterPrecheck(payload, door.keys);
    if (!r.ok) {
      if (best === undefined || (STAGE[r.code] ?? 0) > (STAGE[best.code] ?? 0)) {
        best = r;
        bestDoor = door;
      }
      continue;
    }
    const message = r.message;
    const ins = replay.insert(digest, nowMs);
    if (ins === 'full') {
      return {
        ...refuse(
          'replay-full',
          `replay cache is full (${replay.maxEntries} recent packets); refusing until entries age out`,
        ),
        door: door.name,
        message,
      };
    }
    if (ins === 'duplicate')
      return {
        ...refuse('replay', `replayed SPA packet from ${source} (digest already seen)`),
        door: door.name,
        message,
      };
    const access = checkSpaAccess(message, source, door, nowMs, maxAge);
    if (!access.ok) return { ...access, door: door.name, message };
    return { ok: true, door: door.name, grant: access.grant, message };
  }
  const refusal = best as SpaRefusal;
  return candidates.length === 1 ? { ...refusal, door: (bestDoor as SpaDoor).name } : refusal;
}

function withDoor(r: SpaRefusal, doors: readonly SpaDoor[]): SpaVerdict {
  return doors.length === 1 ? { ...r, door: doors[0].name } : r;
}
