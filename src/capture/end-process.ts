/**
 * Ending a capture process (supervisor.ts): SIGTERM (or SIGKILL) now and, if
 * it has not exited KILL_GRACE_MS later (stopped, or ignoring both), SIGKILL,
 * again every KILL_RETRY_MS. It runs as another user by then: the signals
 * need CAP_KILL (knockd.service grants it for this alone); without it they
 * fail with EPERM, which is logged once.
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';

/** A capture process told to go (channel closed, SIGTERM) and still alive this long later gets SIGKILL. */
export const KILL_GRACE_MS = 500;
/** SIGKILL is sent again this often while an ended capture process has not exited (the kill failed: no CAP_KILL?). */
export const KILL_RETRY_MS = 1000;

/**
 * Tell `child` to go (its channel closed, then `first`) and escalate; its
 * escalation timer is kept in `ending` (the supervisor clears it on exit).
 */
export function endProcess(
  child: ChildProcess,
  first: 'SIGTERM' | 'SIGKILL',
  ending: Map<ChildProcess, NodeJS.Timeout>,
  log: Logger,
): void {
  if (child.connected) child.disconnect();
  let warned = false;
  const kill = (sig: NodeJS.Signals): void => {
    // Reaped already (its exit is being handled): its pid may be someone else's by now.
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(child.pid!, sig);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH' || warned) return;
      warned = true;
      log.error(
        `cannot send ${sig} to capture process ${child.pid} (${code}): it ignores its disconnect and a new one ` +
          `starts only once it has exited; the daemon needs CAP_KILL for this (knockd.service grants it)`,
      );
    }
  };
  const escalate = (): void => {
    kill('SIGKILL');
    ending.set(child, setTimeout(escalate, KILL_RETRY_MS).unref());
  };
  kill(first);
  // unref: a daemon shutting down does not wait for these (the capture process dies with it).
  ending.set(child, setTimeout(escalate, first === 'SIGKILL' ? KILL_RETRY_MS : KILL_GRACE_MS).unref());
}
