/**
 * The interfaces to listen on, looked at every couple of seconds: each one on
 * its own, so one that is missing, has no address or has its link down is
 * waited for while the others capture. Knocks on any of them count when
 * addressed to an address of any of them.
 */
import type { Logger } from 'pino';
import { interfaceAddresses, linkDown } from '../capture/addresses';

/** What one look found. */
export interface InterfaceLook {
  /** Interfaces that can be captured on now. */
  ready: string[];
  /** Their addresses, sorted. */
  local: string[];
  /** The ready set or the addresses differ from the previous look. */
  changed: boolean;
}

export class InterfaceWatcher {
  /** The interfaces to listen on (`-i` split at commas). */
  readonly ifaces: string[];
  /** Per interface: why it cannot be captured on ('' = ready), as last seen. */
  private readonly wait = new Map<string, string>();
  private readonly addrs = new Map<string, string>();
  private local: string[] = [];
  private ready: string[] = [];

  constructor(
    iface: string,
    private readonly ipv4Only: boolean,
    private readonly log: Logger,
  ) {
    const list = [
      ...new Set(
        iface
          .split(',')
          .map((i) => i.trim())
          .filter((i) => i !== ''),
      ),
    ];
    this.ifaces = list.length ? list : [iface];
  }

  /** The addresses knocks must be sent to, as of the last look. */
  get localAddrs(): string[] {
    return this.local;
  }

  /** Why `iface` is not captured on ('' when it is ready or not looked at yet). */
  waitOf(iface: string): string {
    return this.wait.get(iface) ?? '';
  }

  /** Every interface's wait, joined: empty while all are ready. */
  get waitingFor(): string {
    return this.ifaces
      .map((i) => this.wait.get(i) ?? '')
      .filter(Boolean)
      .join('; ');
  }

  /** Look at every interface now. `needAddress`: some door matches on the interface's own addresses. */
  look(first: boolean, needAddress: boolean): InterfaceLook {
    const ready: string[] = [];
    const all = new Set<string>();
    for (const iface of this.ifaces) {
      const info = interfaceAddresses(iface, this.ipv4Only);
      const prev = this.wait.get(iface);
      let wait = '';
      if (!info.exists) {
        wait = `waiting for ${iface}`;
        if (prev === '') this.log.warn(`interface ${iface} disappeared; waiting for it to come back`);
        else if (first) this.log.warn(`interface ${iface} does not exist (yet); waiting for it`);
      } else if (info.addrs.length === 0 && needAddress) {
        // Knocks are matched against the interface's own addresses: none yet means nothing can match.
        wait = `waiting for an address on ${iface}`;
        if (first || prev !== wait) this.log.warn(`interface ${iface} has no address (yet); waiting for one`);
      } else if (linkDown(iface)) {
        wait = `waiting for the link on ${iface}`;
        if (first || prev !== wait) this.log.warn(`interface ${iface}: link is down; waiting for it`);
      }
      this.wait.set(iface, wait);
      const addrs = wait ? '' : info.addrs.join(', ');
      const before = this.addrs.get(iface);
      if (addrs && before && addrs !== before) this.log.info(`addresses of ${iface} changed: ${addrs}`);
      this.addrs.set(iface, addrs);
      if (!wait) {
        ready.push(iface);
        for (const a of info.addrs) all.add(a);
      }
    }
    const local = ready.length ? [...all].sort() : [];
    const changed = local.join(' ') !== this.local.join(' ') || ready.join(',') !== this.ready.join(',');
    this.local = local;
    this.ready = ready;
    return { ready, local, changed };
  }
}
