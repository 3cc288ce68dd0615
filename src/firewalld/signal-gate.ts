/**
 * Authentication of the signals the firewalld client hears. Any local user
 * may send a unicast signal to our unique name (the stock system-bus policy
 * allows it), so a signal's member and body prove nothing; its sender does
 * (the bus sets it, and no client can own `org.freedesktop.DBus`).
 * `NameOwnerChanged` is taken only from the bus itself, and even then only as
 * "ask the bus again"; firewalld's own signals are taken only from the owner
 * the bus named, and are held while that is being asked. Everything else is
 * ignored and counted by the client.
 */
import type { EventEmitter } from 'node:events';
import * as dbus from 'dbus-next';
import { DBUS, FIREWALLD, IFACE, ZONE, type FirewalldEvents } from './client-model';

/** Signals held while firewalld's owner is being asked of the bus; beyond this they are dropped (and counted). */
const MAX_HELD_SIGNALS = 256;

/** What the gate needs of the client. */
export interface SignalHost {
  /** firewalld's unique name as last answered by the bus ('' none). */
  owner(): string;
  /** Ask the bus who owns firewalld's name now (emits up/down). */
  reResolve(bus: dbus.MessageBus): Promise<void>;
  /** Where authenticated firewalld signals are relayed (the client itself). */
  readonly events: Pick<EventEmitter<FirewalldEvents>, 'emit'>;
  /** A signal about firewalld from who may not send it: ignored and counted. */
  ignored(sender: string, member: string): void;
}

export class SignalGate {
  /** Owner look-ups in progress (asked of the bus after a NameOwnerChanged), and the signals held meanwhile. */
  private resolving = 0;
  private ownerChain: Promise<void> = Promise.resolve();
  private held: dbus.Message[] = [];

  constructor(private readonly host: SignalHost) {}

  onMessage(bus: dbus.MessageBus, msg: dbus.Message): void {
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
        .then(() => this.host.reResolve(bus))
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

  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const m of held) this.firewalldSignal(m);
  }

  private firewalldSignal(msg: dbus.Message): void {
    const owner = this.host.owner();
    if (owner === '' || msg.sender !== owner) return this.ignore(msg);
    if (msg.interface === IFACE && msg.member === 'Reloaded') {
      this.host.events.emit('reloaded');
    } else if (msg.interface === IFACE && msg.member === 'DefaultZoneChanged' && typeof msg.body[0] === 'string') {
      this.host.events.emit('defaultZoneChanged', msg.body[0]);
    } else if (
      msg.interface === ZONE &&
      msg.member === 'RichRuleRemoved' &&
      typeof msg.body[0] === 'string' &&
      typeof msg.body[1] === 'string'
    ) {
      this.host.events.emit('ruleRemoved', msg.body[0], msg.body[1]);
    }
  }

  private ignore(msg: dbus.Message): void {
    this.host.ignored(String(msg.sender ?? ''), `${msg.interface ?? ''}.${msg.member ?? ''}`);
  }
}
