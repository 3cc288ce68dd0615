/**
 * knockd's One_Time_Sequences file: one sequence per line (`port[:tcp|udp],...`);
 * empty lines and lines starting with `#` are skipped, as are lines that do
 * not parse. After a successful knock the used line is disabled by writing
 * `#` over its first character, and the next valid line becomes the door's
 * sequence. When none is left the door closes.
 */
import { open } from 'node:fs/promises';
import type { KnockPort } from '../model';
import { IPPROTO_TCP, IPPROTO_UDP } from '../decode/types';

export interface OneTimeSequence {
  sequence: KnockPort[];
  /** Byte offset of the line's first character in the file. */
  offset: number;
  /** 1-based line number (for logs). */
  line: number;
}

/** `7000,8000:udp,9000` → ports, or undefined when any item is not a valid port[:tcp|udp]. */
export function parseSequenceLine(text: string): KnockPort[] | undefined {
  const items = text.split(',').map((s) => s.trim());
  if (items.length === 0 || items.length > 32) return undefined;
  const out: KnockPort[] = [];
  for (const item of items) {
    const m = /^(\d{1,5})(?::\s*(tcp|udp))?$/i.exec(item);
    if (!m) return undefined;
    const port = Number(m[1]);
    if (port > 65535) return undefined;
    out.push({ proto: m[2]?.toLowerCase() === 'udp' ? IPPROTO_UDP : IPPROTO_TCP, port });
  }
  return out;
}

/** The first usable sequence in the file, or undefined when none is left. Throws if the file cannot be read. */
export async function firstOneTimeSequence(file: string): Promise<OneTimeSequence | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = await fh.readFile();
    let offset = 0;
    let line = 0;
    while (offset < buf.length) {
      line++;
      let end = buf.indexOf(0x0a, offset);
      if (end < 0) end = buf.length;
      const text = buf.subarray(offset, end).toString('utf8').trim();
      if (text !== '' && !text.startsWith('#')) {
        const sequence = parseSequenceLine(text);
        if (sequence) return { sequence, offset, line };
      }
      offset = end + 1;
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

/** Disable a used sequence: `#` over the first character of its line (the file is otherwise left as it is). */
export async function disableOneTimeSequence(file: string, used: OneTimeSequence): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(Buffer.from('#'), 0, 1, used.offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
