/**
 * A thin, typed client for firewalld's D-Bus API (`org.fedoraproject.FirewallD1`)
 * on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured by dbus-next).
 *
 * Calls are sent as plain messages (no introspection round trip). The client
 * watches firewalld's bus name, so it can tell "firewalld went away" from
 * "firewalld refused", and relays firewalld's `Reloaded`, `RichRuleRemoved` and
 * `DefaultZoneChanged` signals (only from the current owner of firewalld's name: a signal's sender
 * is set by the bus, so no other client can forge one): the grants layer uses
 * them to put lost rules back and to let go of rules an admin removed. Every
 * call has a deadline, so a hung firewalld is "not reachable", never a wait
 * forever. It never spawns `firewall-cmd`.
 */
import { EventEmitter } from 'node:events';
import * as dbus from 'dbus-next';

export const FIREWALLD = 'org.fedoraproject.FirewallD1';
const PATH = '/org/fedoraproject/FirewallD1';
const IFACE = 'org.fedoraproject.FirewallD1';
const ZONE = 'org.fedoraproject.FirewallD1.zone';
const DBUS = 'org.freedesktop.DBus';

/** A failed firewalld call, with firewalld's own error code (`ALREADY_ENABLED`, `INVALID_ZONE`...) when it gave one. */
export class FirewalldError extends Error {
  constructor(
    message: string,
    /** D-Bus error name, e.g. org.fedoraproject.FirewallD1.Exception, org.freedesktop.DBus.Error.ServiceUnknown. */
    readonly dbusName: string,
    /** firewalld's code (the word before the first colon of its message), e.g. ALREADY_ENABLED. */
    readonly code: string,
  ) {
    super(message);
    this.name = 'FirewalldError';
  }

  /** True when firewalld (or the bus) is not there, as opposed to firewalld refusing the request. */
  get unreachable(): boolean {
    return (
      this.code === 'NOT_CONNECTED' ||
      this.dbusName === 'org.freedesktop.DBus.Error.ServiceUnknown' ||
      this.dbusName === 'org.freedesktop.DBus.Error.NameHasNoOwner' ||
      this.dbusName === 'org.freedesktop.DBus.Error.NoReply' ||
      this.dbusName === 'org.freedesktop.DBus.Error.Disconnected' ||
      this.dbusName === 'org.freedesktop.DBus.Error.NoServer'
    );
  }
}

export interface FirewalldEvents {
  /** firewalld appeared on the bus (started or restarted). */
  up: [];
  /** firewalld left the bus. */
  down: [];
  /** firewalld reloaded its configuration: runtime rich rules are gone. */
  reloaded: [];
  /** A zone's rich rule was removed (by anyone, ourselves included, or by its timeout). */
  ruleRemoved: [zone: string, rule: string];
  /** firewalld's default zone changed (`firewall-cmd --set-default-zone`): the zone's new name. */
  defaultZoneChanged: [zone: string];
  /** The bus connection itself failed; the client reconnects on the next call. */
  busError: [Error];
  /** Connected again after a lost connection: signals may have been missed meanwhile. */
  reconnected: [];
}

/** Default deadline of one firewalld call. */
export const CALL_TIMEOUT_MS = 10_000;

function toError(err: unknown, what: string): FirewalldError {
  if (err instanceof dbus.DBusError) {
    const text = err.text ?? err.message;
    const code = /^([A-Z_]+):/.exec(text)?.[1] ?? err.type.split('.').pop() ?? 'ERROR';
    return new FirewalldError(`${what}: ${text}`, err.type, code);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new FirewalldError(`${what}: ${msg}`, 'org.freedesktop.DBus.Error.Disconnected', 'NOT_CONNECTED');
}

export class FirewalldClient extends EventEmitter<FirewalldEvents> {
  private bus: dbus.MessageBus | undefined;
  private connecting: Promise<dbus.MessageBus> | undefined;
  private owner = '';
  private closed = false;
  private everConnected = false;
  private readonly callTimeoutMs: number;

  constructor(opts: { callTimeoutMs?: number } = {}) {
    super();
    this.callTimeoutMs = opts.callTimeoutMs ?? CALL_TIMEOUT_MS;
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
    bus.on('message', (msg: dbus.Message) => this.onMessage(msg));
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

  /** Watch firewalld's bus name and its Reloaded signal; learn its current owner. */
  private async subscribe(bus: dbus.MessageBus): Promise<void> {
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',sender='${DBUS}',interface='${DBUS}',member='NameOwnerChanged',arg0='${FIREWALLD}'`,
    ]);
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',interface='${IFACE}',member='Reloaded'`,
    ]);
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',interface='${ZONE}',member='RichRuleRemoved'`,
    ]);
    await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [
      `type='signal',interface='${IFACE}',member='DefaultZoneChanged'`,
    ]);
    const has = await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'NameHasOwner', 's', [FIREWALLD]);
    if (has?.body[0] === true) {
      const owner = await this.rawCall(bus, DBUS, '/org/freedesktop/DBus', DBUS, 'GetNameOwner', 's', [FIREWALLD]);
      this.owner = String(owner?.body[0] ?? '');
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
    const delay = [1000, 2000, 5000, 10_000][Math.min(this.reconnectTries++, 3)]!;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connection().then(
        () => (this.reconnectTries = 0),
        () => this.reconnectSoon(),
      );
    }, delay);
    this.reconnectTimer.unref();
  }

  private onMessage(msg: dbus.Message): void {
    if (msg.type !== dbus.MessageType.SIGNAL) return;
    if (msg.interface === DBUS && msg.member === 'NameOwnerChanged' && msg.body[0] === FIREWALLD) {
      const newOwner = String(msg.body[2] ?? '');
      const was = this.owner;
      this.owner = newOwner;
      if (was !== '' && newOwner !== was) this.emit('down');
      if (newOwner !== '') this.emit('up');
    } else if (msg.sender !== this.owner || this.owner === '') {
      // Not from firewalld as we know it: ignored.
    } else if (msg.interface === IFACE && msg.member === 'Reloaded') {
      this.emit('reloaded');
    } else if (msg.interface === IFACE && msg.member === 'DefaultZoneChanged' && typeof msg.body[0] === 'string') {
      this.emit('defaultZoneChanged', msg.body[0]);
    } else if (
      msg.interface === ZONE &&
      msg.member === 'RichRuleRemoved' &&
      typeof msg.body[0] === 'string' &&
      typeof msg.body[1] === 'string'
    ) {
      this.emit('ruleRemoved', msg.body[0], msg.body[1]);
    }
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
  ): Promise<unknown> {
    let bus: dbus.MessageBus;
    try {
      bus = await this.connection();
    } catch (err) {
      throw err instanceof FirewalldError ? err : toError(err, what);
    }
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
      const reply = await Promise.race([this.rawCall(bus, FIREWALLD, PATH, iface, member, signature, body), deadline]);
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
