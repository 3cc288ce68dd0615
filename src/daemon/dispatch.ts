/**
 * What the capture process reports, handled: stage, timeout and wrong-knock
 * lines through the daemon's log budget (event-log.ts); a completed sequence
 * to the action path; an authenticated SPA packet through the replay cache
 * (spa-replay.ts), then the action path once its digest is on disk.
 */
import type { Logger } from 'pino';
import type { WireEvent } from '../capture/protocol';
import type { Actions } from './actions';
import type { BadSpaLog } from './bad-spa';
import type { RuntimeDoor } from './doors';
import type { EventLog } from './event-log';
import type { ReverseNames } from './names';
import type { SpaReplay } from './spa-replay';

/** The running config's doors and action path. */
export interface EventRuntime {
  byName: Map<string, RuntimeDoor>;
  actions: Actions;
}

export interface DispatchDeps<R extends EventRuntime = EventRuntime> {
  log: Logger;
  names: ReverseNames;
  events: EventLog;
  spaReplay: SpaReplay;
  /** SPA packets whose HMAC failed: one line per source a minute (fail2ban). */
  badSpa: BadSpaLog;
  runtime(): R | undefined;
  /** A One_Time_Sequences door opened. */
  oneTimeOpened(rt: R, door: RuntimeDoor): void;
}

export function dispatchEvent<R extends EventRuntime>(e: WireEvent, d: DispatchDeps<R>): void {
  const ctx = { src: e.src, door: e.door };
  const rt = d.runtime();
  switch (e.type) {
    case 'stage':
      d.events.info(ctx, `${d.names.who(e.src)}: ${e.door}: Stage ${e.stage}`);
      return;
    case 'timeout':
      d.events.info(ctx, `${d.names.who(e.src)}: ${e.door}: sequence timeout (stage ${e.stage})`);
      return;
    case 'spoiled':
      d.events.info(
        ctx,
        `${d.names.who(e.src)}: ${e.door}: wrong knock ${e.proto === 6 ? 'tcp' : 'udp'}/${e.port} at stage ${e.stage}, sequence reset`,
      );
      return;
    case 'spa-bad':
      d.badSpa.report(e.src, e.door, d.names.who(e.src));
      return;
    case 'spa': {
      const door = rt?.byName.get(e.door);
      if (rt === undefined || door?.config.spa === undefined) {
        d.log.warn(ctx, `${e.src}: SPA packet for "${e.door}", which is not an SPA door (any more); ignored`);
        return;
      }
      const v = d.spaReplay.judge(Buffer.from(e.payload, 'latin1'), e.src, door.config.spa);
      if (!v.ok) {
        d.log.warn(
          { ...ctx, code: v.code },
          `${d.names.who(e.src)}: ${e.door}: SPA packet refused (${v.code}): ${v.reason}`,
        );
        return;
      }
      const ports = v.grant.ports.map((p) => `${p.proto}/${p.port}`).join(',');
      d.log.info(
        ctx,
        `${d.names.who(e.src)}: ${e.door}: SPA packet accepted (user ${JSON.stringify(v.message.username)}): open ${ports} for ${v.grant.address}, ${v.grant.timeout}s`,
      );
      // Its digest is on disk before the rule goes in: a crash between the two cannot make this packet work twice.
      const grant = v.grant;
      const actions = rt.actions;
      void d.spaReplay.settled().then(() => actions.spa(door, grant));
      return;
    }
    case 'open':
    case 'close': {
      d.log.info(ctx, `${d.names.who(e.src)}: ${e.door}: OPEN SESAME`);
      const door = rt?.byName.get(e.door);
      if (rt === undefined || door === undefined) return;
      rt.actions.knock(door, e.src, e.family);
      if (door.config.oneTimeSequences !== undefined) d.oneTimeOpened(rt, door);
      return;
    }
  }
}
