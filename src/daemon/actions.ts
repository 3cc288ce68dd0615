/**
 * The one action path: a completed knock (matcher event) becomes either
 * firewalld grants (every firewalld door, including the firewall-cmd command
 * lines converted when the config was loaded) or knockd shell commands.
 * Nothing else in the daemon adds a rule or runs a start command; the only
 * other changes are closes: a reload's of the grants the new config no longer
 * makes (reload-grants.ts), and the stop commands that fall due.
 *
 * The gate comes first: a source that can never be a real client (see
 * sources.ts) gets no rule and no command; it is counted and logged once per
 * source and minute, so a spoofed flood of them cannot flood the log. Then
 * the door's completion bound (completions.ts).
 *
 * Zones: a rule template without a zone opens in firewalld's default zone as
 * it is at the knock; a close finds the rule in the zone it was added to (the
 * grant's own zone), whatever the default zone is now.
 */
import { DEFAULT_REFRESH_INTERVAL_S, RefreshGate, refreshIntervalMs } from './refresh-gate';
import type { Logger } from 'pino';
import { IP_PLACEHOLDER, knockerRule } from '../model';
import { canonicalAddress } from '../decode/address';
import { canonicalNetwork } from '../decode/network';
import type { Grants } from '../firewalld/grants';
import type { SpaGrant } from '../spa/types';
import type { CommandRunner } from './commands';
import type { CompletionLimit } from './completions';
import type { RuntimeDoor } from './doors';
import { ImpossibleSources } from './impossible-sources';
import type { NotifyHook } from './notify-hook';
import { hostAddresses, impossibleSource, type HostAddresses } from './sources';

/** Host addresses are re-read at most this often (interfaces change rarely; completed knocks are few). */
const HOST_ADDRS_TTL_MS = 2000;

/** The source a door's grant is for: the knocker's address, or its network with firewalld_source_prefix(6). */
export function grantSource(door: RuntimeDoor, src: string, family: 4 | 6): string {
  const prefix = door.config.sourcePrefix?.[family];
  return prefix === undefined ? src : (canonicalNetwork(src, prefix) ?? src);
}

export class Actions {
  private host: HostAddresses | undefined;
  private hostAt = 0;

  constructor(
    private readonly grants: Grants | undefined,
    private readonly commands: CommandRunner,
    private readonly log: Logger,
    private readonly defaultZone: () => string,
    private readonly limit: CompletionLimit | undefined = undefined,
    private readonly now: () => number = Date.now,
    private readonly readHost: () => HostAddresses = hostAddresses,
    /** Quiet single-port doors (refresh-gate.ts); a new config starts afresh (at most one extra refresh). */
    readonly refresh: RefreshGate = new RefreshGate(),
    /** Impossible sources' count and once-a-minute memory: the daemon's, kept across reloads (impossible-sources.ts). */
    readonly impossible: ImpossibleSources = new ImpossibleSources(log, now),
    /** notify_command runs (notify-hook.ts); undefined: none. */
    private readonly notify: NotifyHook | undefined = undefined,
  ) {}

  /** A door's sequence was completed by `src` (canonical address text of family `family`). */
  knock(door: RuntimeDoor, src: string, family: 4 | 6): void {
    const why = impossibleSource(src, this.hostAddrs());
    if (why !== undefined) {
      this.refuse(door.name, src, why);
      return;
    }
    if (this.limit && !this.closesHeld(door, src, family) && !this.limit.take(door.name, src)) return;
    const fwd = door.config.firewalld;
    if (fwd === undefined) {
      // Quiet doors: no start command again while this (door, source)'s stop command is pending.
      if (
        (door.config.stopCommand ?? door.config.stopCommand6) !== undefined &&
        this.commands.pending().some((p) => p.door === door.name && p.src === src)
      ) {
        this.refresh.skipped++;
        return;
      }
      try {
        this.commands.open(door.config, src, family);
      } catch (err) {
        this.log.error(
          { src, door: door.name, err },
          `${src}: ${door.name}: command not run: ${(err as Error).message}`,
        );
      }
      return;
    }
    if (this.grants === undefined) return;
    // firewalld_source_prefix(6): the grant (rule, table entry, close, notify) is for the knocker's network.
    src = grantSource(door, src, family);
    const who = { src, door: door.name };
    const opens: Promise<boolean>[] = [];
    for (const t of fwd.rules[family]) {
      const rule = t.rule.split(IP_PLACEHOLDER).join(src);
      if (fwd.action === 'open') {
        const zone = t.zone ?? this.defaultZone();
        // Quiet doors (refresh-gate.ts): a grant held (open, or its add still on its way) is refreshed at most once
        // per Refresh_Interval, counted from the knock that acted. A grant not held (never, expired, removed by
        // hand) or being closed is opened at once.
        const gate = `${zone}\n${rule}`;
        const interval = refreshIntervalMs(door.config.refreshInterval ?? DEFAULT_REFRESH_INTERVAL_S, t.timeout);
        const held = this.grants.held(zone, rule);
        if (held === undefined || held.state === 'closing') this.refresh.acted(gate);
        else if (!this.refresh.admit(gate, interval)) continue;
        opens.push(this.opened(zone, rule, t.timeout, who, held === undefined));
      } else
        for (const zone of this.closeZones(t.zone, rule)) {
          this.refresh.forget(`${zone}\n${rule}`);
          void this.grants.close(zone, rule, who);
        }
    }
    this.notifyOpen(door, src, opens);
  }

  /** Open (or refresh) one grant; true when it was new and firewalld confirmed it (notify_command's "open"). */
  private opened(zone: string, rule: string, timeout: number, who: { src: string; door: string }, fresh: boolean) {
    const grants = this.grants!;
    return grants.open(zone, rule, timeout, who).then(
      () => fresh && grants.held(zone, rule)?.state === 'open',
      () => false,
    );
  }

  /** Once every rule of this knock is settled: notify_command "open" if at least one grant is new and in firewalld. */
  private notifyOpen(door: RuntimeDoor, src: string, opens: Promise<boolean>[]): void {
    const cmd = door.config.notifyCommand;
    if (cmd === undefined || this.notify === undefined || opens.length === 0) return;
    const notify = this.notify;
    void Promise.all(opens).then((ok) => {
      if (ok.some(Boolean)) void notify.fire(cmd, src, door.name, 'open');
    });
  }

  /**
   * A close door completed by a source that holds a rule it removes: never held back by the completion bound (a
   * flood of a sniffed close sequence must not keep a real client's door open until its end), and it can only
   * remove what that source holds. A close from a source holding nothing still counts against the bound.
   */
  private closesHeld(door: RuntimeDoor, src: string, family: 4 | 6): boolean {
    const fwd = door.config.firewalld;
    if (fwd?.action !== 'close' || this.grants === undefined) return false;
    const grants = this.grants;
    const source = grantSource(door, src, family);
    return fwd.rules[family].some((t) => {
      const rule = t.rule.split(IP_PLACEHOLDER).join(source);
      if (grants.held(t.zone ?? this.defaultZone(), rule) !== undefined) return true;
      // Zone-less: added to the default zone as it was at the open (a scan of the grants held, --max-grants at most).
      return t.zone === undefined && grants.list().some((g) => g.rule === rule);
    });
  }

  /** Where a close of `rule` looks: the template's zone, or (no zone) every zone a grant of it was added to, else the default zone. */
  private closeZones(zone: string | undefined, rule: string): string[] {
    if (zone !== undefined) return [zone];
    const held = [
      ...new Set(
        this.grants!.list()
          .filter((g) => g.rule === rule)
          .map((g) => g.zone),
      ),
    ];
    return held.length ? held : [this.defaultZone()];
  }

  /**
   * An SPA packet was accepted: one rich rule per requested port for the
   * address it names (the packet's source when the client sent 0.0.0.0),
   * with the timeout it was granted, in the door's zone.
   */
  spa(door: RuntimeDoor, grant: SpaGrant): void {
    const why =
      canonicalAddress(grant.address) !== grant.address
        ? 'not an address in canonical form'
        : impossibleSource(grant.address, this.hostAddrs());
    if (why !== undefined) {
      this.refuse(door.name, grant.address, why);
      return;
    }
    if (this.limit && !this.limit.take(door.name, grant.address)) return;
    if (this.grants === undefined) return;
    const zone = door.config.spaZone ?? this.defaultZone();
    const who = { src: grant.address, door: door.name };
    const opens: Promise<boolean>[] = [];
    for (const p of grant.ports) {
      const rule = knockerRule(grant.family, grant.address, `port port="${p.port}" protocol="${p.proto}"`);
      opens.push(this.opened(zone, rule, grant.timeout, who, this.grants.held(zone, rule) === undefined));
    }
    this.notifyOpen(door, grant.address, opens);
  }

  private hostAddrs(): HostAddresses {
    const now = this.now();
    if (this.host === undefined || now - this.hostAt > HOST_ADDRS_TTL_MS) {
      this.host = this.readHost();
      this.hostAt = now;
    }
    return this.host;
  }

  private refuse(door: string, src: string, why: string): void {
    this.impossible.refuse(door, src, why);
  }
}
