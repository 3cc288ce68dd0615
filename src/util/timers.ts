/**
 * Timers the daemon needs beyond Node's own: a one-shot timer of any length
 * (Node's setTimeout holds at most 2^31-1 ms, about 24.8 days, and fires at
 * once for anything longer), and a promise with a deadline.
 */

/** Longest delay one Node timer holds. */
export const MAX_TIMER_MS = 0x7fffffff;

/** A cancellable one-shot timer. */
export interface TimerHandle {
  cancel(): void;
}

export type SetTimer = (fn: () => void, ms: number) => TimerHandle;

/** setTimeout for any delay: long ones are chained. Unref'd: a pending timer never keeps the process alive by itself. */
export const setLongTimer: SetTimer = (fn, ms) => {
  let handle: NodeJS.Timeout | undefined;
  const arm = (left: number): void => {
    const step = Math.min(left, MAX_TIMER_MS);
    handle = setTimeout(() => (left > step ? arm(left - step) : fn()), step);
    handle.unref();
  };
  arm(Math.max(0, Number.isFinite(ms) ? ms : MAX_TIMER_MS));
  return { cancel: () => clearTimeout(handle) };
};

/**
 * `p`, or a rejection after `ms`. The timer stays referenced on purpose: a
 * D-Bus call that can never be answered (no bus) must not let a command-line
 * call exit silently with nothing printed.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what = 'no answer'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)),
  );
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}
