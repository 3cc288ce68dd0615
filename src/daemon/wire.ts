/**
 * What the capture process gets of a config: knock doors for the matcher
 * (plain data), SPA doors' ports and HMAC keys for the SPA gate, and the BPF
 * filter built from both and the interfaces' addresses.
 */
import { buildFilter } from '../capture/filter';
import type { WireDoor, WireSpaDoor } from '../capture/protocol';
import type { SpaDoor } from '../model';
import { spaHmacKeyBase64 } from '../spa/keys';
import type { RuntimeDoor } from './doors';

export interface Wire {
  doors: WireDoor[];
  spa: WireSpaDoor[];
  filter: string;
}

function wireSpaDoor(d: SpaDoor): WireSpaDoor {
  return { name: d.name, port: d.port, hmacKeyBase64: spaHmacKeyBase64(d.keys), hmacType: d.keys.hmacType };
}

function wireDoor(d: RuntimeDoor): WireDoor {
  return {
    name: d.name,
    sequence: d.sequence,
    seqTimeoutMs: d.seqTimeoutMs,
    tcpFlags: d.tcpFlags,
    ...(d.strictRepeats === true ? { strictRepeats: true } : {}),
    action: d.action,
    ...(d.target !== undefined ? { target: d.target } : {}),
    ...(d.config.oneTimeSequences !== undefined ? { oneTime: true } : {}),
  };
}

/** The capture process's view of `doors`, for knocks addressed to `local`. */
export function wire(doors: readonly RuntimeDoor[], local: readonly string[]): Wire {
  const knock = doors.filter((d) => d.config.spa === undefined);
  const spa = doors.flatMap((d) => (d.config.spa ? [wireSpaDoor(d.config.spa)] : []));
  return {
    doors: knock.map(wireDoor),
    spa,
    filter: buildFilter(
      knock,
      local,
      spa.map((s) => s.port),
    ),
  };
}
