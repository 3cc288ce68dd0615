/**
 * knockd's One_Time_Sequences file: one sequence per line, in the grammar of
 * `Sequence =` (sequence.ts: `port[:tcp|udp],...`, spaces allowed around
 * items and the `:`); empty lines and lines starting with `#` are skipped,
 * and so are lines that do not parse (each reported with its line number
 * and why). After a successful knock the used line is disabled as knockd
 * 0.8 does it, with `#` over its first character, and the next valid line
 * becomes the door's sequence. When none is left the door closes.
 *
 * The used line is found by its content, in the file as it is when the mark
 * is written (re-read then, never a byte offset remembered from an earlier
 * read: an admin who edits the file while the daemon runs must not make the
 * mark land on another line), and the file is replaced atomically (a temp
 * file beside it with the same mode and owner, fsync, rename). A used
 * sequence is also remembered in memory for the life of the daemon, so it
 * never opens twice in one run whatever happens to the file (a line
 * un-commented or added again); across restarts the `#` in the file is the
 * record.
 */
import { open, realpath, rename, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { KnockPort } from '../model';
import { parseSequence, sequenceText } from './sequence';
import { trimAscii } from './text';

export interface OneTimeSequence {
  sequence: KnockPort[];
  /** The line's text as found (trimmed): how the line is found again to mark it used. */
  text: string;
  /** 1-based line number (for logs; the line may have moved by the time it is marked). */
  line: number;
  /**
   * The ports of this and of every later unused sequence in the file as read:
   * the capture filter takes them all, so moving on to the next line does not
   * change the (locked) filter and restart the capture process.
   */
  laterPorts: KnockPort[];
}

export interface SkippedLine {
  line: number;
  why: string;
}

/** Sequences used in this run, by canonical text (sequence.ts's sequenceText), per file. */
export class UsedSequences {
  private readonly byFile = new Map<string, Set<string>>();

  has(file: string, sequence: readonly KnockPort[]): boolean {
    return this.byFile.get(file)?.has(sequenceText({ sequence })) === true;
  }

  add(file: string, sequence: readonly KnockPort[]): void {
    const set = this.byFile.get(file) ?? new Set<string>();
    set.add(sequenceText({ sequence }));
    this.byFile.set(file, set);
  }
}

/** The daemon's memory of used sequences (one per process: reloads keep it). */
export const usedSequences = new UsedSequences();

/** One line of the file: a sequence, a comment/blank (undefined), or why it is not one. */
export function parseOneTimeLine(raw: string): KnockPort[] | { why: string } | undefined {
  const text = trimAscii(raw);
  if (text === '' || text.startsWith('#')) return undefined;
  const r = parseSequence(text);
  return r.errors.length === 0 ? r.ports : { why: r.errors.join('; ') };
}

/** Read `file` (not through a symlink planted as its last component: realpath first) with its identity. */
async function readWhole(file: string): Promise<{ text: string; ino: number; mtimeMs: number; size: number }> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    return { text: await fh.readFile('utf8'), ino: st.ino, mtimeMs: st.mtimeMs, size: st.size };
  } finally {
    await fh.close();
  }
}

/**
 * The first usable sequence in the file not used in this run (with the ports
 * of every unused sequence after it), or undefined when none is left;
 * `skipped` gets each line that is not a sequence. Throws if the file cannot
 * be read.
 */
export async function firstOneTimeSequence(
  file: string,
  skipped: SkippedLine[] = [],
  used: UsedSequences = usedSequences,
): Promise<OneTimeSequence | undefined> {
  const { text } = await readWhole(await realpath(file));
  const lines = text.split('\n');
  let found: OneTimeSequence | undefined;
  for (let i = 0; i < lines.length; i++) {
    const r = parseOneTimeLine(lines[i]);
    if (r === undefined) continue;
    if (!Array.isArray(r)) {
      skipped.push({ line: i + 1, why: r.why });
      continue;
    }
    if (used.has(file, r)) continue;
    if (found === undefined) found = { sequence: r, text: trimAscii(lines[i]), line: i + 1, laterPorts: [] };
    found.laterPorts.push(...r);
  }
  return found;
}

/** Replace `file` with `text` atomically, keeping its mode and owner. */
async function replaceFile(file: string, text: string, mode: number, uid: number, gid: number): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  await unlink(tmp).catch(() => undefined);
  const fh = await open(tmp, flags, 0o600);
  try {
    await fh.chown(uid, gid);
    await fh.chmod(mode & 0o7777);
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Disable a used sequence: remembered as used for this run, and `#` written
 * over the first character of the first line, in the file as it is now,
 * whose text is `used.text` (knockd 0.8's mark). Returns false when no such
 * line is left (the admin changed or removed it; the sequence stays used in
 * this run all the same). A file changed while it is being rewritten is read
 * again (at most 3 times) so an admin's edit is never lost.
 */
export async function disableOneTimeSequence(
  file: string,
  used: OneTimeSequence,
  memory: UsedSequences = usedSequences,
): Promise<boolean> {
  memory.add(file, used.sequence);
  const real = await realpath(file);
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = await readWhole(real);
    const lines = before.text.split('\n');
    const i = lines.findIndex((l) => trimAscii(l) === used.text);
    if (i < 0) return false;
    lines[i] = `#${lines[i].slice(1)}`;
    const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    const st = await fh.stat().finally(() => fh.close());
    if (st.ino !== before.ino || st.mtimeMs !== before.mtimeMs || st.size !== before.size) continue;
    await replaceFile(real, lines.join('\n'), st.mode, st.uid, st.gid);
    return true;
  }
  throw new Error(
    `${file} kept changing while the used sequence was being marked; it is remembered as used in this run`,
  );
}
