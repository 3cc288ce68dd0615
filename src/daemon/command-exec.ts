/**
 * One knockd command through the shell, as knockd's system() runs it: the
 * command byte for byte to `/bin/sh -c`, in its own session; output captured
 * (bounded) and logged with how it ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { OutputCapture, oneLine, type CommandInfo, type CommandResult } from './command-text';

/** After the shell exits, how long to wait for its pipes to close (a backgrounded child may hold them). */
const PIPE_GRACE_MS = 200;
/** What execShell tells, and asks, the runner. */
export interface ExecHooks {
  log: Logger;
  shell: string;
  /** The child exists (to kill its group on a flush timeout). */
  spawned(child: ChildProcess): void;
  /** The shell has started (observers). */
  started(): void;
  /** The child is done with. */
  ended(child: ChildProcess): void;
  /** flush() timed out: a SIGKILL is ours. */
  aborted(): boolean;
}

/** Run one command through `h.shell`; resolves when it has ended (never rejects), its end logged. */
export function execShell(job: CommandInfo, h: ExecHooks): Promise<CommandResult> {
  const ctx = { src: job.src, door: job.door };
  const prefix = `${job.src}: ${job.door}`;
  const startedAt = Date.now();
  h.log.info(ctx, `${prefix}: running command: ${job.command}`);
  const stdout = new OutputCapture();
  const stderr = new OutputCapture();

  return new Promise<CommandResult>((resolve) => {
    let child: ChildProcess | undefined;
    let spawned = false;
    let settled = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let grace: NodeJS.Timeout | undefined;

    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(grace);
      if (child) {
        h.ended(child);
        child.stdout?.destroy();
        child.stderr?.destroy();
      }
      const result: CommandResult = {
        ...job,
        code: exit?.code ?? null,
        signal: exit?.signal ?? null,
        stdout: stdout.text(),
        stderr: stderr.text(),
        durationMs: Date.now() - startedAt,
      };
      if (error) result.error = error;
      if (h.aborted() && exit?.signal === 'SIGKILL') result.aborted = true;
      report(h, result);
      resolve(result);
    };

    try {
      // argv form: the command reaches the shell byte for byte, as with system().
      // detached: own session and process group, like knockd's setsid(); lets
      // flush() kill the whole group.
      child = spawn(h.shell, ['-c', job.command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      // spawn throws synchronously only for invalid arguments (e.g. a NUL byte).
      finish(err as Error);
      return;
    }
    h.spawned(child);
    child.stdout?.on('data', (c: Buffer) => stdout.add(c));
    child.stderr?.on('data', (c: Buffer) => stderr.add(c));
    // 'error' before 'spawn': the shell could not be started (ENOENT, EACCES, EAGAIN).
    // Later errors (a failed kill) do not end the command.
    child.on('error', (err) => {
      if (!spawned) finish(err);
    });
    child.on('spawn', () => {
      spawned = true;
      h.started();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // Output may still be in the pipes; but a backgrounded grandchild may
      // hold them open forever, and knockd's system() would not wait for it.
      grace = setTimeout(() => finish(), PIPE_GRACE_MS);
    });
    child.on('close', () => {
      if (exit) finish();
    });
  });
}

/** Log how a command ended. */
function report(h: ExecHooks, r: CommandResult): void {
  const ctx = { src: r.src, door: r.door, kind: r.kind, code: r.code, signal: r.signal, ms: r.durationMs };
  const prefix = `${r.src}: ${r.door}`;
  const err = r.stderr ? `: ${oneLine(r.stderr)}` : '';
  if (r.stdout) h.log.debug({ ...ctx, stdout: r.stdout }, `${prefix}: command output: ${oneLine(r.stdout)}`);
  if (r.error) {
    h.log.error({ ...ctx, err: r.error }, `${prefix}: error: cannot run command with ${h.shell}: ${r.error.message}`);
  } else if (r.signal) {
    h.log.warn(
      { ...ctx, stderr: r.stderr },
      `${prefix}: command killed by signal ${r.signal}${r.aborted ? ' (shutdown)' : ''}${err}`,
    );
  } else if (r.code !== 0) {
    h.log.warn({ ...ctx, stderr: r.stderr }, `${prefix}: command returned non-zero status code (${r.code})${err}`);
  } else {
    h.log.info(r.stderr ? { ...ctx, stderr: r.stderr } : ctx, `${prefix}: command finished (status 0)${err}`);
  }
}

/** SIGKILL a detached child's whole process group (its pid is the group id). */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
