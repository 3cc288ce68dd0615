/**
 * `p`, or a rejection after `ms`. The timer stays referenced on purpose: a
 * D-Bus call that can never be answered (no bus) must not let a command-line
 * call exit silently with nothing printed.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what = 'no answer'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)));
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}
