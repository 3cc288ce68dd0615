/**
 * Small JSON state files (pending stop commands, grants held), written so
 * that a reader — the next start of the daemon, after a crash or SIGKILL —
 * sees the old or the new content, never a mix, and read as hostile input:
 * a damaged file is moved aside, every entry in it that still validates is
 * kept, and a file that cannot be read is never overwritten.
 *
 * Layout: one JSON document with one entry per line,
 *   {"version":2,"grants":[
 *   {...},
 *   {...}
 *   ]}
 * so that a file cut short (or with one line damaged) still yields every
 * whole entry line by line.
 */
import { open as openFile, rename, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Create `file` for writing, never through a symlink or into an existing
 * file (O_EXCL|O_NOFOLLOW); a leftover of a crashed run (same name) is
 * removed first (unlink removes a symlink itself, never its target).
 */
export async function createExclusive(file: string, mode = 0o600): Promise<FileHandle> {
  try {
    return await openFile(file, NEW_FILE, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await unlink(file);
    return openFile(file, NEW_FILE, mode);
  }
}

/** Read `file` as UTF-8 without following a symlink (ELOOP) and only if it is a regular file. */
export async function readNoFollow(file: string): Promise<string> {
  const fh = await openFile(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile())
      throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EINVAL' });
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** tmp file (created with O_EXCL|O_NOFOLLOW), fsync, rename. */
export async function writeAtomically(file: string, data: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await createExclusive(tmp);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** What a state file holds: a version and one list of entries under `key`. */
export interface StateDoc {
  version: number;
  key: string;
  entries: readonly unknown[];
  /** Extra top-level fields (small scalars), written before the list. */
  extra?: Record<string, string | number>;
}

/** The file's text: one entry per line (see the module comment). */
export function formatState(doc: StateDoc): string {
  const head = JSON.stringify({ version: doc.version, ...doc.extra });
  const lines = doc.entries.map((e) => JSON.stringify(e));
  return `${head.slice(0, -1)},${JSON.stringify(doc.key)}:[\n${lines.join(',\n')}${lines.length ? '\n' : ''}]}\n`;
}

/** An entry validator: the typed entry, or why it is refused. */
export type EntryCheck<T> = (raw: unknown) => T | string;

export interface StateRead<T> {
  entries: T[];
  /** Top-level fields other than version and the list (as found; unvalidated). */
  extra: Record<string, unknown>;
  /** Every problem, naming the file and the entry. */
  problems: string[];
  /** Where the damaged file was moved (`<file>.corrupt-<time>`). */
  movedTo?: string;
  /** The file exists but could not be read or moved aside: it must not be overwritten. */
  keep?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Read a state file whose entries live under `key`. Missing: nothing, no
 * problem. Damaged (not JSON, cut short, wrong shape, bad entries): every
 * entry that validates is returned, the problems are listed, and the file is
 * moved aside so the next write starts clean while the original stays for a
 * post-mortem.
 */
export async function readStateFile<T>(
  file: string,
  key: string,
  versions: readonly number[],
  check: EntryCheck<T>,
  now: () => number = Date.now,
): Promise<StateRead<T>> {
  const out: StateRead<T> = { entries: [], extra: {}, problems: [] };
  let text: string;
  try {
    text = await readNoFollow(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return out;
    if (e.code === 'ELOOP') {
      // A symlink in root's state directory: planted (the daemon writes none). Not followed, moved aside below.
      out.problems.push(`${file}: is a symbolic link; not read`);
      text = '';
    } else {
      out.problems.push(`${file}: cannot read it (${e.message}); it is left as it is and not overwritten`);
      out.keep = true;
      return out;
    }
  }
  let raws: unknown[] = [];
  if (out.problems.length === 0)
    try {
      const data: unknown = JSON.parse(text);
      if (!isObject(data)) throw new Error('not a JSON object');
      if (!versions.includes(data.version as number))
        out.problems.push(
          `${file}: unknown version ${JSON.stringify(data.version)} (this knockd reads ${versions.join(', ')})`,
        );
      const list = data[key];
      if (!Array.isArray(list)) out.problems.push(`${file}: no "${key}" list`);
      else raws = list;
      for (const [k, v] of Object.entries(data)) if (k !== 'version' && k !== key) out.extra[k] = v;
    } catch (err) {
      // Not one JSON document (cut short, or a line damaged): take what whole entry lines there are.
      out.problems.push(`${file}: not valid JSON (${(err as Error).message}); salvaging the entries that are whole`);
      raws = salvage(text);
    }
  raws.forEach((raw, i) => {
    const r = check(raw);
    if (typeof r === 'string')
      out.problems.push(`${file}: entry ${i + 1} refused: ${r}: ${JSON.stringify(raw)?.slice(0, 200)}`);
    else out.entries.push(r);
  });
  if (out.problems.length > 0) {
    const aside = `${file}.corrupt-${new Date(now()).toISOString().replace(/[:.]/g, '-')}`;
    try {
      await rename(file, aside);
      out.movedTo = aside;
    } catch (err) {
      out.problems.push(`${file}: cannot move it aside to ${aside} (${(err as Error).message}); it is not overwritten`);
      out.keep = true;
    }
  }
  return out;
}

/** Entry lines of a damaged file: each line that is, on its own (less a trailing comma), a JSON object. */
function salvage(text: string): unknown[] {
  const found: unknown[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim().replace(/,$/, '');
    if (!t.startsWith('{') || !t.endsWith('}')) continue;
    try {
      const v: unknown = JSON.parse(t);
      // The header line of our layout ({"version":..,"key":[) never parses alone; a whole document on one line does:
      if (isObject(v) && !('version' in v)) found.push(v);
    } catch {
      /* a damaged line: skipped, counted by the caller as missing */
    }
  }
  return found;
}

/**
 * Writes `snapshot()` to `file` whenever `mark()` is called: one write at a
 * time, changes made during a write coalesced into the next one. `hold()`
 * stops all writes (the file on disk could not be read: it is evidence, and
 * possibly state another process needs).
 */
export class StateWriter {
  private dirty = false;
  private running: Promise<void> | undefined;
  private held: string | undefined;

  constructor(
    private readonly file: string,
    private readonly snapshot: () => StateDoc,
    private readonly log: Logger,
  ) {}

  hold(reason: string): void {
    this.held = reason;
    this.log.error(
      `${this.file}: ${reason}: not writing it; state changes are kept in memory only until the daemon restarts`,
    );
  }

  mark(): void {
    if (this.held !== undefined) return;
    this.dirty = true;
    if (this.running) return;
    this.running = (async () => {
      while (this.dirty) {
        this.dirty = false;
        try {
          await writeAtomically(this.file, formatState(this.snapshot()));
        } catch (err) {
          this.log.error({ err }, `cannot write state file ${this.file}: ${(err as Error).message}`);
        }
      }
      this.running = undefined;
    })();
  }

  /** Resolves once everything marked so far is on disk. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }
}
