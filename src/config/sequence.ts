/**
 * The knock-sequence grammar, for `Sequence =` in knockd.conf and for each
 * line of a One_Time_Sequences file: `port[:tcp|udp],...`, at most SEQ_MAX
 * items, each port 0-65535, TCP when no protocol is given. ASCII white space
 * (knockd's trim) is allowed around items and around the `:`; the protocol is
 * case-insensitive.
 */

import { IPPROTO_TCP, IPPROTO_UDP, type KnockProto } from '../decode/types';
import type { KnockPort } from '../model';
import { clip, ListProblems, trimAscii } from './text';

/** knockd's SEQ_MAX: most ports a sequence may have. */
export const SEQ_MAX = 32;

/**
 * Parses a sequence text. `errors` holds at most one message (the first bad
 * item, how many more, and a too-long sequence); `ports` is only meaningful
 * when `errors` is empty.
 */
export function parseSequence(value: string): { ports: KnockPort[]; errors: string[] } {
  const ports: KnockPort[] = [];
  if (value === '')
    return { ports, errors: ['Sequence is empty: list the ports to knock, e.g. "Sequence = 7000,8000:udp,9000"'] };

  const items = value.split(',');
  const tooMany =
    items.length > SEQ_MAX ? `Sequence has ${items.length} ports; knockd allows at most ${SEQ_MAX}` : undefined;
  const bad = new ListProblems();

  for (const raw of items) {
    const item = trimAscii(raw);
    if (item === '') {
      bad.add(`empty item in Sequence "${clip(value)}" (a stray comma?)`);
      continue;
    }
    const parts = item.split(':');
    const portText = trimAscii(parts[0] ?? '');
    if (parts.length > 2) {
      bad.add(`bad Sequence item "${clip(item)}": expected port or port:tcp or port:udp`);
      continue;
    }
    if (!/^\d+$/.test(portText)) {
      bad.add(
        `invalid port "${clip(item)}" in Sequence: expected a number 0-65535, optionally followed by :tcp or :udp`,
      );
      continue;
    }
    const port = Number(portText);
    if (port > 65535) {
      bad.add(`port ${clip(portText)} in Sequence is out of range (0-65535)`);
      continue;
    }
    let proto: KnockProto = IPPROTO_TCP;
    if (parts.length === 2) {
      const p = trimAscii(parts[1] ?? '').toUpperCase();
      if (p === 'UDP') proto = IPPROTO_UDP;
      else if (p !== 'TCP') {
        bad.add(
          `unknown protocol "${clip(trimAscii(parts[1] ?? ''))}" in Sequence item "${clip(item)}" (expected tcp or udp)`,
        );
        continue;
      }
    }
    ports.push({ port, proto });
  }
  // One error for the line: the first bad item (if any), and the length.
  if (bad.count === 0) return { ports, errors: tooMany !== undefined ? [tooMany] : [] };
  return {
    ports,
    errors: bad.errors(tooMany !== undefined ? `; besides, ${tooMany.charAt(0).toLowerCase()}${tooMany.slice(1)}` : ''),
  };
}

/** A sequence as knockd's config syntax, e.g. `3333:tcp,4444:tcp,5555:udp` (parseSequence reads it back). */
export function sequenceText(door: { sequence: readonly KnockPort[] }): string {
  return door.sequence.map((p) => `${p.port}:${p.proto === IPPROTO_UDP ? 'udp' : 'tcp'}`).join(',');
}
