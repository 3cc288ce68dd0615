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
 * counted (`ignoredSignals`, shown by `knockd --status`).
 *
 * Every call has a deadline, so a hung firewalld is "not reachable", never a
 * wait forever, and at most `maxCalls` are in flight (the bus refuses more
 * than 128 pending replies per connection): the rest wait their turn. It
 * never spawns `firewall-cmd`.
 */
import { EventEmitter } from 'node:events';
import * as dbus from 'dbus-next';
import { CallLimiter, DEFAULT_MAX_FIREWALLD_CALLS } from './limiter';

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
  /** A signal about firewalld that did not come from who may send it (forged, or stale): ignored. */
  ignoredSignal: [sender: string, member: string];
}

/** Signals held while firewalld's owner is being asked of the bus; beyond this they are dropped (and counted). */
const MAX_HELD_SIGNALS = 256;

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
  private readonly limiter: CallLimiter;
  /** Signals about firewalld ignored because of their sender, all time. */
  ignoredSignals = 0;
  /** Owner look-ups in progress (asked of the bus after a NameOwnerChanged), and the signals held meanwhile. */
  private resolving = 0;
  private ownerChain: Promise<void> = Promise.resolve();
  private held: dbus.Message[] = [];

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
      const owner = r?.body[0];
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

  private onMessage(bus: dbus.MessageBus, msg: dbus.Message): void {
    if (msg.type !== dbus.MessageType.SIGNAL) return;
    const about =
      (msg.interface === DBUS && msg.member === 'NameOwnerChanged' && msg.body[0] === FIREWALLD) ||
      msg.interface === IFACE ||
      msg.interface === ZONE;
    if (!about) return;
    if (msg.interface === DBUS) {
      // Only the bus itself speaks for the bus; and then only "ask again": the body is not believed.
      if (msg.sender !== DBUS) return this.ignore(msg);
      this.resolving++;
      this.ownerChain = this.ownerChain
        .then(() => this.reResolve(bus))
        .finally(() => {
          if (--this.resolving === 0) this.releaseHeld();
        });
      return;
    }
    if (this.resolving > 0) {
      // Judged once the bus has said who owns firewalld's name now.
      if (this.held.length < MAX_HELD_SIGNALS) this.held.push(msg);
      else this.ignore(msg);
      return;
    }
    this.firewalldSignal(msg);
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

  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const m of held) this.firewalldSignal(m);
  }

  private firewalldSignal(msg: dbus.Message): void {
    if (this.owner === '' || msg.sender !== this.owner) return this.ignore(msg);
    if (msg.interface === IFACE && msg.member === 'Reloaded') {
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

  private ignore(msg: dbus.Message): void {
    this.ignoredSignals++;
    this.emit('ignoredSignal', String(msg.sender ?? ''), `${msg.interface ?? ''}.${msg.member ?? ''}`);
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
    return this.limiter.run(() => this.send(bus, iface, member, signature, body, what));
  }

  /** One call with its deadline (from when it is sent, not from when it was queued). */
  private async send(
    bus: dbus.MessageBus,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
    what: string,
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
