/**
 * The daemon's link to firewalld: the D-Bus client and the grant table, made
 * the first time a config needs them (at start, or at the reload that adds
 * the first firewalld or SPA door; grants.json is taken over then), kept
 * across reloads (they hold the grants), and the default zone as firewalld
 * says it is now (read at each check, then followed through its
 * DefaultZoneChanged signal).
 *
 * `check` asks firewalld whether the zones and services a set of doors names
 * exist; it changes nothing here, so a refused reload changes nothing.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { doorZones } from '../firewalld/check';
import { FirewalldClient, FirewalldError } from '../firewalld/client';
import { Grants } from '../firewalld/grants';
import type { Grant } from '../firewalld/grant-model';
import type { EntryOrigin } from '../state/origin';
import { FirewalldHealth } from '../firewalld/health';
import { logIgnoredSignals } from '../firewalld/report';
import { ruleTemplates } from '../model';
import type { RuntimeDoor } from './doors';

/** What firewalld said about a set of doors. */
export type FirewalldCheck =
  | { kind: 'ok'; defaultZone: string }
  /** firewalld (or the system bus) is not there: the doors wait for it. */
  | { kind: 'unreachable'; why: string }
  /** A zone or service the doors name does not exist: one line per problem, naming the config line and door. */
  | { kind: 'refused'; problems: string[] };

/** Does this door need firewalld (a firewalld door, or an SPA door)? */
export const needsFirewalld = (d: RuntimeDoor): boolean =>
  d.config.firewalld !== undefined || d.config.spa !== undefined;

export class FirewallLink {
  private fw: FirewalldClient | undefined;
  private table: Grants | undefined;
  /** Whether firewalld itself is broken (a zone it had answers INVALID_ZONE, its state is FAILED). */
  private watch: FirewalldHealth | undefined;
  private zone = '';

  constructor(
    private readonly log: Logger,
    private readonly stateDir: string,
    /** firewalld appeared on the bus. */
    private readonly onUp: () => void,
    /** --max-grants (default DEFAULT_MAX_GRANTS). */
    private readonly maxGrants?: number,
    /** A grant ended (notify_command's close/expire events, notify-hook.ts). */
    private readonly onEnd?: (g: Grant, why: 'expire' | 'close' | 'removed') => void,
  ) {}

  get client(): FirewalldClient | undefined {
    return this.fw;
  }

  get grants(): Grants | undefined {
    return this.table;
  }

  get health(): FirewalldHealth | undefined {
    return this.watch;
  }

  /** firewalld's default zone, as last read or signalled ('' before the first check). */
  get defaultZone(): string {
    return this.zone;
  }

  /** A check passed: its default zone is the one zone-less doors use. */
  setDefaultZone(zone: string): void {
    if (zone !== '' && zone !== this.zone && this.zone !== '')
      this.log.info(`firewalld's default zone is ${zone} (was ${this.zone})`);
    this.zone = zone;
  }

  /**
   * Make the client and the grant table if not made yet, and take over the
   * grants of the previous run: those `origin` (state-origin.ts) takes.
   */
  async ensure(origin?: EntryOrigin<Grant>): Promise<void> {
    if (this.fw !== undefined) return;
    const fw = new FirewalldClient();
    this.fw = fw;
    fw.on('busError', (err) =>
      this.log.warn({ err }, `D-Bus connection lost (${err.message}); reconnecting on the next firewalld call`),
    );
    fw.on('down', () => this.log.warn('firewalld left the bus; open grants will be restored when it returns'));
    fw.on('up', () => {
      this.log.info('firewalld is on the bus');
      this.onUp();
    });
    fw.on('reconnected', () => this.log.info('D-Bus connection re-established; checking the grants held'));
    fw.on('defaultZoneChanged', (zone) => {
      if (zone === this.zone) return;
      this.log.info(
        `firewalld's default zone changed from ${this.zone || '(unknown)'} to ${zone}: doors without firewalld_zone add their rules there from now on; rules added before stay in the zone they were added to, and are closed there`,
      );
      this.zone = zone;
    });
    logIgnoredSignals(fw, this.log);
    this.watch = new FirewalldHealth(fw, this.log);
    const file = join(this.stateDir, 'grants.json');
    this.table = new Grants(fw, this.log, {
      stateFile: file,
      health: this.watch,
      ...(this.maxGrants !== undefined ? { maxGrants: this.maxGrants } : {}),
      ...(this.onEnd ? { onEnd: this.onEnd } : {}),
    });
    const restored = await this.table.restore(file, origin);
    if (restored) this.log.info(`took over ${restored} grant(s) held before the restart (${file})`);
  }

  /** Ask firewalld about the zones and services `doors` name (zone-less doors: its default zone). */
  async check(doors: readonly RuntimeDoor[], configFile: string): Promise<FirewalldCheck> {
    const fw = this.fw;
    if (fw === undefined) return { kind: 'unreachable', why: 'no firewalld client' };
    const where = (d: RuntimeDoor, key: string): string =>
      `${configFile}:${d.config.lines[key] ?? d.config.line}: [${d.name}]`;
    let defaultZone: string;
    let zones: string[];
    let services: string[];
    try {
      if (!(await fw.probe()))
        return {
          kind: 'unreachable',
          why: 'firewalld is not running (no owner of org.fedoraproject.FirewallD1 on the system bus): start it with "systemctl start firewalld"',
        };
      defaultZone = await fw.getDefaultZone();
      zones = await fw.getZones();
      services = await fw.listServices();
    } catch (err) {
      const e = err as Error;
      const unreachable = !(err instanceof FirewalldError) || err.unreachable || err.code === 'TIMEOUT';
      const hint = unreachable ? ' (is firewalld running? "systemctl status firewalld")' : '';
      const why = `cannot talk to firewalld over D-Bus: ${e.message}${hint}`;
      return unreachable ? { kind: 'unreachable', why } : { kind: 'refused', problems: [why] };
    }
    const problems: string[] = [];
    const noZone = (d: RuntimeDoor, key: string, zone: string): void => {
      if (!zones.includes(zone))
        problems.push(`${where(d, key)} firewalld has no zone "${zone}" (zones: ${zones.join(', ')})`);
    };
    for (const d of doors) {
      if (d.config.spa !== undefined) noZone(d, 'FIREWALLD_ZONE', d.config.spaZone ?? defaultZone);
      const fwd = d.config.firewalld;
      if (fwd === undefined) continue;
      const key = fwd.from === 'directives' ? 'FIREWALLD_ZONE' : 'START_COMMAND';
      for (const zone of doorZones(d.config, defaultZone)) noZone(d, key, zone);
      for (const s of fwd.services) {
        if (!services.includes(s))
          problems.push(
            `${where(d, 'FIREWALLD_SERVICE')} firewalld has no service "${s}" (see "firewall-cmd --get-services")`,
          );
      }
    }
    if (problems.length) return { kind: 'refused', problems };
    // Zones that exist now: one answering INVALID_ZONE later means firewalld itself broke.
    this.watch?.knowZones(zones);
    this.watch?.start();
    await this.table?.readPolicy();
    return { kind: 'ok', defaultZone };
  }

  /** Finish queued firewalld calls (at most `deadlineMs`), then let go of the bus. False if firewalld did not finish. */
  async stop(deadlineMs: number): Promise<boolean> {
    const finished = this.table ? await this.table.stop(deadlineMs) : true;
    this.table?.dispose();
    this.watch?.stop();
    this.fw?.close();
    return finished;
  }
}

/** Say which doors' firewall-cmd command lines are carried out over D-Bus instead of the shell. */
export function logConvertedDoors(log: Logger, doors: readonly RuntimeDoor[], defaultZone: string): void {
  for (const d of doors) {
    const f = d.config.firewalld;
    if (f?.from !== 'commands') continue;
    const rules = [
      ...new Set(
        ruleTemplates(f).map(
          (r) =>
            `zone ${r.zone ?? (defaultZone || '(firewalld default)')}: ${r.rule}${f.action === 'open' ? ` (${r.timeout ? `timeout ${r.timeout}s` : 'no timeout'})` : ''}`,
        ),
      ),
    ];
    log.info(
      `${d.name}: firewall-cmd command lines carried out natively over D-Bus (no shell, no firewall-cmd process): ${f.action === 'open' ? 'add' : 'remove'} ${rules.join('; ')}`,
    );
  }
}
