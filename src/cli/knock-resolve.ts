/**
 * knock's name resolution: one numeric address per family, as knock 0.8
 * uses getaddrinfo(), with its two-line error message.
 */
import * as net from 'node:net';

/** The part of node:dns/promises lookup() knock uses. */
export type LookupFn = (
  host: string,
  opts: { family: 0 | 4 | 6; verbatim: true },
) => Promise<{ address: string; family: number }>;

/** Raised when the host cannot be resolved; carries knock 0.8's two-line message. */
export class ResolveError extends Error {}

/** glibc's gai_strerror() texts for the error codes Node reports, so messages read like knock 0.8's. */
const GAI_MESSAGES: Readonly<Record<string, string>> = {
  ENOTFOUND: 'Name or service not known',
  EAI_NONAME: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
  EAI_FAIL: 'Non-recoverable failure in name resolution',
  ENODATA: 'No address associated with hostname',
  EAI_NODATA: 'No address associated with hostname',
  EAI_ADDRFAMILY: 'Address family for hostname not supported',
  EAI_FAMILY: 'ai_family not supported',
  EAI_MEMORY: 'Memory allocation failure',
  EAI_SYSTEM: 'System error',
};

/**
 * Resolve `host` to one numeric address (the first getaddrinfo() answer,
 * in resolver order, as knock 0.8 uses). Node's lookup() returns IP literals
 * unchanged whatever family was asked for, so a literal of the wrong family
 * is refused here, as getaddrinfo() does.
 */
export async function resolveHost(
  host: string,
  family: 0 | 4 | 6,
  port: number,
  resolve: LookupFn,
): Promise<{ address: string; family: 4 | 6 }> {
  const fail = (why: string): ResolveError =>
    new ResolveError(`Failed to resolve hostname '${host}' on port ${port}\ngetaddrinfo: ${why}`);
  const literal = net.isIP(host);
  if (literal !== 0) {
    if (family !== 0 && literal !== family) throw fail(GAI_MESSAGES.EAI_ADDRFAMILY);
    return { address: host, family: literal === 6 ? 6 : 4 };
  }
  try {
    const r = await resolve(host, { family, verbatim: true });
    return { address: r.address, family: r.family === 6 ? 6 : 4 };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw fail(GAI_MESSAGES[code] ?? (code || (err as Error).message));
  }
}
