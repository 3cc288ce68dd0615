/**
 * The bodies of the helper processes (run in a lab namespace by agents.ts's
 * NsAgent): `--probe` sends knocks and polls port 22, `--dbus` calls firewalld
 * over D-Bus; both read and answer JSON lines on stdin/stdout.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dbus from 'dbus-next';
import { POLL_MS } from './common';
import { type Want } from './agents';
import { onJsonLines } from './agents';

type Reply = (msg: Record<string, unknown>) => void;

function serveLines(handler: (msg: Record<string, unknown>, reply: Reply) => Promise<void>): void {
  const reply: Reply = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  onJsonLines(process.stdin, (msg) => {
    handler(msg, reply).catch((e: unknown) => reply({ id: msg.id, error: e instanceof Error ? e.message : String(e) }));
  }).on('close', () => process.exit(0));
}

const noop = (): void => undefined;
const REFUSED = new Set(['EHOSTUNREACH', 'ECONNREFUSED', 'ENETUNREACH', 'EACCES', 'EPERM']);

/**
 * Send one SYN per port (connect, destroyed once the SYN is out), in order, no
 * delay: knock 0.8 without -d. Resolves the time just before the last SYN was
 * handed to the kernel (or now, for no ports).
 */
async function sendKnocks(host: string, ports: number[]): Promise<bigint> {
  let sent = process.hrtime.bigint();
  for (const port of ports) {
    // net.connect() to an IP literal queues connect(2) with process.nextTick;
    // this tick is queued first, so it runs immediately before it. (Stamping
    // after the syscall is wrong on a busy machine: the SYN wakes the daemon
    // inside connect(2) and this process can be preempted for milliseconds
    // before it gets to stamp anything.)
    process.nextTick(() => (sent = process.hrtime.bigint()));
    const s = net.connect({ host, port });
    s.on('error', noop);
    await new Promise<void>((r) => setImmediate(r));
    s.destroy();
  }
  return sent;
}

/** One UDP datagram; resolves the time just before it was handed to the kernel. */
async function sendDatagram(host: string, port: number, payload: Buffer): Promise<bigint> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, r));
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) =>
    sock.send(payload, port, host, (err) => (err ? reject(err) : resolve())),
  );
  sock.close();
  return t0;
}

/** Start a connect to host:22 every intervalMs (overlapping, at most 128 in flight, each given up after 1 s). */
function pollPort22(
  host: string,
  want: Want,
  timeoutMs: number,
  intervalMs: number,
  closedOnSilence: boolean,
  silenceMs: number,
): Promise<{ t1: bigint | null; how: string; attempts: number }> {
  return new Promise((resolve) => {
    if (want === 'none') {
      resolve({ t1: process.hrtime.bigint(), how: 'none', attempts: 0 });
      return;
    }
    const live = new Set<net.Socket>();
    let done = false;
    let attempts = 0;
    const finish = (t1: bigint | null, how: string): void => {
      if (done) return;
      done = true;
      clearInterval(iv);
      clearTimeout(limit);
      for (const s of live) s.destroy();
      resolve({ t1, how, attempts });
    };
    const attempt = (): void => {
      if (done || live.size >= 128) return;
      attempts++;
      const started = process.hrtime.bigint();
      const s = net.connect({ host, port: 22 });
      live.add(s);
      const giveUp = setTimeout(
        () => {
          live.delete(s);
          s.destroy();
          // Unanswered SYN: with the flood filling queues, the reject may be lost too.
          if (closedOnSilence && want === 'closed') finish(started + BigInt(Math.round(silenceMs * 1e6)), 'silence');
        },
        closedOnSilence ? silenceMs : 1000,
      );
      s.once('connect', () => {
        const t = process.hrtime.bigint();
        clearTimeout(giveUp);
        live.delete(s);
        s.on('error', noop);
        s.resetAndDestroy(); // RST: no TIME_WAIT pile-up over thousands of probes
        if (want === 'open') finish(t, 'connect');
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        const t = process.hrtime.bigint();
        s.on('error', noop);
        clearTimeout(giveUp);
        live.delete(s);
        if (want === 'closed' && REFUSED.has(e.code ?? '')) finish(t, e.code ?? 'error');
      });
    };
    const iv = setInterval(attempt, intervalMs);
    const limit = setTimeout(() => finish(null, 'timeout'), timeoutMs);
    attempt();
  });
}

function runProbe(): void {
  serveLines(async (msg, reply) => {
    if (msg.op !== 'knock' && msg.op !== 'spa') throw new Error(`unknown op ${String(msg.op)}`);
    const host = String(msg.host);
    const ports = (msg.ports as number[]) ?? [];
    const t0 =
      msg.op === 'spa'
        ? await sendDatagram(host, Number(msg.port), Buffer.from(String(msg.payload), 'hex'))
        : await sendKnocks(host, ports);
    const r = await pollPort22(
      host,
      msg.want as Want,
      Number(msg.timeoutMs),
      Number(msg.intervalMs ?? POLL_MS),
      msg.closedOnSilence === true,
      Number(msg.silenceMs ?? 300),
    );
    reply({
      id: msg.id,
      t0: t0.toString(),
      t1: r.t1 === null ? null : r.t1.toString(),
      ms: r.t1 === null ? null : Number(r.t1 - t0) / 1e6,
      how: r.how,
      attempts: r.attempts,
    });
  });
}

function runDbusAgent(): void {
  const bus = dbus.systemBus();
  const call = (iface: string, member: string, signature: string, body: unknown[]): Promise<dbus.Message | null> =>
    bus.call(
      new dbus.Message({
        destination: 'org.fedoraproject.FirewallD1',
        path: '/org/fedoraproject/FirewallD1',
        interface: iface,
        member,
        signature,
        body,
      }),
    );
  const ZONE = 'org.fedoraproject.FirewallD1.zone';
  serveLines(async (msg, reply) => {
    switch (msg.op) {
      case 'ping': {
        await call('org.fedoraproject.FirewallD1', 'getDefaultZone', '', []);
        reply({ id: msg.id });
        return;
      }
      case 'add':
      case 'remove': {
        const t0 = process.hrtime.bigint();
        if (msg.op === 'add') await call(ZONE, 'addRichRule', 'ssi', ['public', String(msg.rule), 0]);
        else await call(ZONE, 'removeRichRule', 'ss', ['public', String(msg.rule)]);
        const t1 = process.hrtime.bigint();
        reply({ id: msg.id, t0: t0.toString(), t1: t1.toString() });
        return;
      }
      case 'clear': {
        const rules = ((await call(ZONE, 'getRichRules', 's', ['public']))?.body[0] ?? []) as string[];
        for (const r of rules) await call(ZONE, 'removeRichRule', 'ss', ['public', r]).catch(noop);
        reply({ id: msg.id, removed: rules.length });
        return;
      }
      default:
        throw new Error(`unknown op ${String(msg.op)}`);
    }
  });
}

// ===========================================================================

if (require.main === module) {
  const mode = process.argv[2];
  if (mode === '--probe') runProbe();
  else if (mode === '--dbus') runDbusAgent();
  else {
    process.stderr.write(`usage: agent-main.js --probe | --dbus (started by agents.ts)\n`);
    process.exit(2);
  }
}
