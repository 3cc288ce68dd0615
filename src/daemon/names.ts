/**
 * `-l`: knockers' host names for the log, looked up in the background
 * (getnameinfo(3) on libuv's thread pool, like knockd's gethostbyaddr: hosts
 * file, then DNS) and never on the packet path: the first line about a new
 * source may still show the bare address.
 */
import { lookupService } from 'node:dns/promises';
import type { Logger } from 'pino';

/** Bound on the names remembered (oldest forgotten first). */
const MAX_NAMES = 10_000;

export class ReverseNames {
  private readonly names = new Map<string, string | null>();
  private warned = false;

  constructor(
    private readonly enabled: boolean,
    private readonly log: Logger,
  ) {}

  /** `src`, followed by its name in parentheses once one is known. */
  who(src: string): string {
    if (!this.enabled) return src;
    const cached = this.names.get(src);
    if (cached === undefined) {
      this.names.set(src, null);
      if (this.names.size > MAX_NAMES) this.names.delete(this.names.keys().next().value as string);
      lookupService(src, 0).then(
        (r) => this.names.set(src, r.hostname && r.hostname !== src ? r.hostname : null),
        (err: NodeJS.ErrnoException) => this.failed(src, err),
      );
    }
    return cached ? `${src} (${cached})` : src;
  }

  /** A lookup that failed for another reason than "no name": said once (knockd.service denies IP traffic). */
  private failed(src: string, err: NodeJS.ErrnoException): void {
    if (err.code === 'ENOTFOUND' || this.warned) return;
    this.warned = true;
    this.log.warn(
      `-l: reverse lookup of ${src} failed (${err.code ?? err.message}): DNS cannot be reached, names come from /etc/hosts only (said once). ` +
        'Under knockd.service, IPAddressDeny=any blocks DNS: a drop-in with an empty IPAddressDeny= allows it',
    );
  }
}
