/** How the grant table reads a failed firewalld call. */
import { FirewalldError } from './client';

/** Why firewalld did not do it: it (or the bus) was not there or busy (`transient`: retried), or it said no. */
export function classify(err: unknown): { kind: 'transient' | 'refused'; e: FirewalldError } {
  const e = err instanceof FirewalldError ? err : new FirewalldError(String(err), '', 'ERROR');
  const transient =
    e.unreachable ||
    e.dbusName === 'org.freedesktop.DBus.Error.AccessDenied' ||
    // The bus's own bounds (pending replies, queued bytes): a flood, not the config.
    e.dbusName === 'org.freedesktop.DBus.Error.LimitsExceeded' ||
    e.code === 'NOT_RUNNING' ||
    e.code === 'RUNNING_BUT_FAILED';
  return { kind: transient ? 'transient' : 'refused', e };
}

export const isCode = (err: unknown, code: string): boolean => err instanceof FirewalldError && err.code === code;
