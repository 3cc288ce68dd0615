/**
 * What the firewalld client (client.ts) and its signal gate (signal-gate.ts)
 * share: bus names, the error of a failed call, and the events relayed.
 */
import * as dbus from 'dbus-next';

export const FIREWALLD = 'org.fedoraproject.FirewallD1';
export const IFACE = 'org.fedoraproject.FirewallD1';
export const ZONE = 'org.fedoraproject.FirewallD1.zone';
export const DBUS = 'org.freedesktop.DBus';

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

export function toError(err: unknown, what: string): FirewalldError {
  if (err instanceof dbus.DBusError) {
    const text = err.text ?? err.message;
    const code = /^([A-Z_]+):/.exec(text)?.[1] ?? err.type.split('.').pop() ?? 'ERROR';
    return new FirewalldError(`${what}: ${text}`, err.type, code);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new FirewalldError(`${what}: ${msg}`, 'org.freedesktop.DBus.Error.Disconnected', 'NOT_CONNECTED');
}
