/**
 * Small JSON state files (pending stop commands, grants held), written so
 * that a reader — the next start of the daemon, after a crash or SIGKILL —
 * sees the old or the new content, never a mix.
 */
import { open as openFile, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** tmp file, fsync, rename. */
export async function writeAtomically(file: string, data: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await openFile(tmp, 'w', 0o600);
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

/**
 * Writes `snapshot()` to `file` whenever `mark()` is called: one write at a
 * time, changes made during a write coalesced into the next one.
 */
export class StateWriter {
  private dirty = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly file: string,
    private readonly snapshot: () => unknown,
    private readonly log: Logger,
  ) {}

  mark(): void {
    this.dirty = true;
    if (this.running) return;
    this.running = (async () => {
      while (this.dirty) {
        this.dirty = false;
        try {
          await writeAtomically(this.file, `${JSON.stringify(this.snapshot(), null, 2)}\n`);
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
