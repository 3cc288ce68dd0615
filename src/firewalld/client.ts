/**
 * A thin, typed client for firewalld's D-Bus API (`org.fedoraproject.FirewallD1`)
 * on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured by dbus-next).
 *
 * Calls are sent as plain messages (no introspection round trip). The client
 * watches firewalld's bus name, so it can tell "firewalld went away" from
 * "firewalld refused", and relays firewalld's `Reloaded`, `RichRuleRemoved` and
 * `DefaultZoneChanged` signals: the grants layer uses them to put lost rules back and to let go of
 * rules an admin removed.
 *
 * Signals are authenticated. Any local user may send a unicast signal to our
 * unique name (the stock system-bus policy allows it), so a signal's member
 * and body prove nothing; its sender does (the bus sets it, and no client can
 * own `org.freedesktop.DBus`). `NameOwnerChanged` is taken only from the bus
 * itself, and even then only as "ask the bus again": firewalld's owner is
 * always what `GetNameOwner` answers, never a signal's body. firewalld's own
 * signals are taken only from that owner. Everything else is ignored and
 * counted (`ignoredSignals`, shown by `knockd --status`). signal-gate.ts does
 * this; client-model.ts holds the names, errors and events both share.
 *
 * Every call has a deadline, so a hung firewalld is "not reachable", never a
 * wait forever, and at most `maxCalls` are in flight (the bus refuses more
 * than 128 pending replies per connection): the rest wait their turn. It
 * never spawns `firewall-cmd`.
 */
import { EventEmitter } from 'node:events';
import * as dbus from 'dbus-next';
import { DBUS, FIREWALLD, FirewalldError, IFACE, ZONE, toError, type FirewalldEvents } from './client-model';
import { CallLimiter, DEFAULT_MAX_FIREWALLD_CALLS } from './limiter';
import { SignalGate } from './signal-gate';

export { FIREWALLD, FirewalldError, type FirewalldEvents } from './client-model';
const PATH = '/org/fedoraproject/FirewallD1';
/** The permanent configuration (zone files): read only, by --check and the start-up lock-out warnings. */
const CONFIG_PATH = '/org/fedoraproject/FirewallD1/config';
const CONFIG = 'org.fedoraproject.FirewallD1.config';
const CONFIG_ZONE = 'org.fedoraproject.FirewallD1.config.zone';

/** Default deadline of one firewalld call. */
export const CALL_TIMEOUT_MS = 10_000;

export class FirewalldClient extends EventEmitter<FirewalldEvents> {
  private bus: dbus.MessageBus | undefined;
  private connecting: Promise<dbus.MessageBus> | undefined;
  private owner = '';
  private closed = false;
  private everConnected = false;
  private readonly callTimeoutMs: number;
  private readonly limiter: CallLimiter;
  /** Signals about firewalld ignored because of their sender, all time. */
  ignoredSignals = 0;
  private readonly signals = new SignalGate({
    owner: () => this.owner,
    reResolve: (bus) => this.reResolve(bus),
    events: this,
    ignored: (sender, member) => {
      this.ignoredSignals++;
      this.emit('ignoredSignal', sender, member);
    },
  });

  constructor(opts: { callTimeoutMs?: number; maxCalls?: number } = {}) {
    super();
    this.callTimeoutMs = opts.callTimeoutMs ?? CALL_TIMEOUT_MS;
    this.limiter = new CallLimiter(opts.maxCalls ?? DEFAULT_MAX_FIREWALLD_CALLS);
  }

  /** firewalld calls in flight and waiting (bounded by `maxCalls`). */
  get calls(): { inFlight: number; queued: number; max: number; peakQueued: number } {
    const l = this.limiter;
    return { inFlight: l.inFlight, queued: l.queued, max: l.max, peakQueued: l.peakQueued };
  }

  /** Connect (lazily, on first use) and subscribe to firewalld's name and Reloaded signal. */
  private async connection(): Promise<dbus.MessageBus> {
    if (this.closed)
      throw new FirewalldError('firewalld client closed', 'org.freedesktop.DBus.Error.Disconnected', 'NOT_CONNECTED');
    if (this.bus) return this.bus;
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<dbus.MessageBus> {
    const bus = dbus.systemBus();
    // A bus that cannot be reached errors out here; without this, calls on it would wait forever.
    const failed = new Promise<never>((_, reject) => bus.once('error', reject));
    failed.catch(() => undefined);
    bus.on('error', (err: Error) => this.dropBus(bus, err));
    bus.on('message', (msg: dbus.Message) => this.onMessage(bus, msg));
    // The connection has no 'close' event in dbus-next's types; its stream does.
    const stream = (bus as unknown as { _connection?: EventEmitter })._connection;
    stream?.on('end', () => this.dropBus(bus, new Error('D-Bus connection closed')));
    try {
      await Promise.race([failed, this.subscribe(bus)]);
    } catch (err) {
      bus.disconnect();
      throw toError(err, 'cannot connect to the system bus');
    }
    this.bus = bus;
    if (this.everConnected) this.emit('reconnected');
    this.everConnected = true;
    return bus;
  }

  /** Watch firewalld's bus name and its signals; ask the bus who owns firewalld's name now. */
  private async subscribe(bus: dbus.MessageBus): Promise<void> {
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',sender='${DBUS}',interface='${DBUS}',member='NameOwnerChanged',arg0='${FIREWALLD}'`,
    ]);
    // sender= keeps other clients' broadcasts out; unicast signals to us still arrive, hence onMessage's checks.
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',sender='${FIREWALLD}',interface='${IFACE}',member='Reloaded'`,
    ]);
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',sender='${FIREWALLD}',interface='${ZONE}',member='RichRuleRemoved'`,
    ]);
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',sender='${FIREWALLD}',interface='${IFACE}',member='DefaultZoneChanged'`,
    ]);
    this.owner = await this.askOwner(bus);
  }

  /** The unique name that owns firewalld's name, as the bus says ('' none). */
  private async askOwner(bus: dbus.MessageBus): Promise<string> {
    try {
      const r = await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'GetNameOwner', 's', [FIREWALLD]);
      const owner: unknown = r?.body[0];
      return typeof owner === 'string' && owner.startsWith(':') ? owner : '';
    } catch (err) {
      if (err instanceof dbus.DBusError && err.type === 'org.freedesktop.DBus.Error.NameHasNoOwner') return '';
      throw err;
    }
  }

  private dropBus(bus: dbus.MessageBus, err: Error): void {
    if (this.bus !== bus) return;
    this.bus = undefined;
    try {
      bus.disconnect();
    } catch {
      /* already gone */
    }
    if (this.owner !== '') {
      this.owner = '';
      this.emit('down');
    }
    if (!this.closed) {
      this.emit('busError', err);
      this.reconnectSoon();
    }
  }

  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectTries = 0;

  /** Connect again on our own (backoff 1, 2, 5, 10 s): what we hold is checked on `reconnected`, not at the next knock. */
  private reconnectSoon(): void {
    if (this.reconnectTimer || this.closed) return;
    const delay = [1000, 2000, 5000, 10_000][Math.min(this.reconnectTries++, 3)];
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connection().then(
        () => (this.reconnectTries = 0),
        () => this.reconnectSoon(),
      );
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Every message of the connection: signals about firewalld are judged by the gate (signal-gate.ts). */
  private onMessage(bus: dbus.MessageBus, msg: dbus.Message): void {
    this.signals.onMessage(bus, msg);
  }

  /** firewalld's name changed hands (the bus said so): ask the bus who has it now. */
  private async reResolve(bus: dbus.MessageBus): Promise<void> {
    if (this.bus !== undefined && this.bus !== bus) return; // a connection since replaced
    let now: string;
    try {
      now = await this.askOwner(bus);
    } catch (err) {
      this.dropBus(bus, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const was = this.owner;
    if (now === was) return;
    this.owner = now;
    if (was !== '') this.emit('down');
    if (now !== '') this.emit('up');
  }

  private async rawCall(
    bus: dbus.MessageBus,
    destination: string,
    path: string,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
  ): Promise<dbus.Message | null> {
    return bus.call(new dbus.Message({ destination, path, interface: iface, member, signature, body }));
  }

  private async call(
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
    what: string,
    path: string = PATH,
  ): Promise<unknown> {
    let bus: dbus.MessageBus;
    try {
      bus = await this.connection();
    } catch (err) {
      throw err instanceof FirewalldError ? err : toError(err, what);
    }
    return this.limiter.run(() => this.send(bus, iface, member, signature, body, what, path));
  }

  /** One call with its deadline (from when it is sent, not from when it was queued). */
  private async send(
    bus: dbus.MessageBus,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
    what: string,
    path: string,
  ): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new FirewalldError(
              `${what}: no answer from firewalld within ${this.callTimeoutMs / 1000} s`,
              'org.freedesktop.DBus.Error.NoReply',
              'TIMEOUT',
            ),
          ),
        this.callTimeoutMs,
      );
    });
    try {
      const reply = await Promise.race([this.rawCall(bus, FIREWALLD, path, iface, member, signature, body), deadline]);
      return reply?.body[0];
    } catch (err) {
      throw err instanceof FirewalldError ? err : toError(err, what);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Is firewalld on the bus right now (as far as the last signal said)? */
  get running(): boolean {
    return this.owner !== '';
  }

  /**
   * Which firewalld process answers now: its pid and unique bus name. A rule
   * recorded under another identity was lost to a firewalld restart since.
   */
  async identity(): Promise<string> {
    const bus = await this.connection();
    if (this.owner === '')
      throw new FirewalldError(
        'firewalld is not running',
        'org.freedesktop.DBus.Error.NameHasNoOwner',
        'NOT_CONNECTED',
      );
    const owner = this.owner;
    // One bus name on one bus connection is one firewalld process for its whole life: ask the bus once per
    // owner, not once per grant. Not across connections: a new dbus-daemon hands out the same unique names again.
    if (this.identityOf?.bus === bus && this.identityOf.owner === owner) return this.identityOf.id;
    const pid = await Promise.race([
      this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'GetConnectionUnixProcessID', 's', [owner]),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), this.callTimeoutMs).unref()),
    ]).catch(() => null);
    const id = `${String(pid?.body[0] ?? '?')}/${owner}`;
    if (pid !== null) this.identityOf = { bus, owner, id };
    return id;
  }

  private identityOf: { bus: dbus.MessageBus; owner: string; id: string } | undefined;

  /** Connect and learn whether firewalld is there; never throws for "not running". */
  async probe(): Promise<boolean> {
    await this.connection();
    return this.owner !== '';
  }

  /** One of firewalld's properties (org.freedesktop.DBus.Properties.Get). */
  private async property(name: string): Promise<unknown> {
    const v = await this.call('org.freedesktop.DBus.Properties', 'Get', 'ss', [IFACE, name], `Get(${name})`);
    return v instanceof dbus.Variant ? v.value : v;
  }

  /** firewalld's `version` property, e.g. "2.5.2". */
  async version(): Promise<string> {
    return String(await this.property('version'));
  }

  /** firewalld's `state` property: INIT, RUNNING or FAILED. */
  async firewalldState(): Promise<string> {
    return String(await this.property('state'));
  }

  async getDefaultZone(): Promise<string> {
    return String(await this.call(IFACE, 'getDefaultZone', '', [], 'getDefaultZone'));
  }

  async getZones(): Promise<string[]> {
    return (await this.call(ZONE, 'getZones', '', [], 'getZones')) as string[];
  }

  async listServices(): Promise<string[]> {
    return (await this.call(IFACE, 'listServices', '', [], 'listServices')) as string[];
  }

  /** Services open in a zone (runtime). */
  async getServices(zone: string): Promise<string[]> {
    return (await this.call(ZONE, 'getServices', 's', [zone], `getServices(${zone})`)) as string[];
  }

  /** Ports open in a zone (runtime), as [port, protocol] pairs; port may be a range `a-b`. */
  async getPorts(zone: string): Promise<[string, string][]> {
    return (await this.call(ZONE, 'getPorts', 's', [zone], `getPorts(${zone})`)) as [string, string][];
  }

  /** Services and ports a zone opens in its permanent configuration (what a reload or a reboot brings back). */
  async getPermanentZone(zone: string): Promise<{ services: string[]; ports: [string, string][] }> {
    const path = String(
      await this.call(CONFIG, 'getZoneByName', 's', [zone], `config.getZoneByName(${zone})`, CONFIG_PATH),
    );
    if (!path.startsWith(`${CONFIG_PATH}/`))
      throw new FirewalldError(`config.getZoneByName(${zone}): not a zone path: ${path.slice(0, 100)}`, '', '');
    const services = (await this.call(
      CONFIG_ZONE,
      'getServices',
      '',
      [],
      `config.zone.getServices(${zone})`,
      path,
    )) as string[];
    const ports = (await this.call(CONFIG_ZONE, 'getPorts', '', [], `config.zone.getPorts(${zone})`, path)) as [
      string,
      string,
    ][];
    return { services, ports };
  }

  /** The ports a service definition opens, as [port, protocol] pairs. */
  async getServicePorts(service: string): Promise<[string, string][]> {
    const settings = (await this.call(
      IFACE,
      'getServiceSettings2',
      's',
      [service],
      `getServiceSettings2(${service})`,
    )) as Record<string, { value: unknown }>;
    return (settings.ports?.value as [string, string][] | undefined) ?? [];
  }

  async queryRichRule(zone: string, rule: string): Promise<boolean> {
    return (await this.call(ZONE, 'queryRichRule', 'ss', [zone, rule], `queryRichRule(${zone})`)) === true;
  }

  /** Add a runtime rich rule; firewalld removes it by itself after `timeout` seconds (0: never). */
  async addRichRule(zone: string, rule: string, timeout: number): Promise<void> {
    await this.call(ZONE, 'addRichRule', 'ssi', [zone, rule, timeout], `addRichRule(${zone}, '${rule}', ${timeout})`);
  }

  async removeRichRule(zone: string, rule: string): Promise<void> {
    await this.call(ZONE, 'removeRichRule', 'ss', [zone, rule], `removeRichRule(${zone}, '${rule}')`);
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const bus = this.bus;
    this.bus = undefined;
    bus?.disconnect();
  }
}
