/**
 * The helper processes the benchmarks drive from the parent: the probe (client
 * namespace) and the D-Bus agent (server namespace), each a node process
 * running agent-main.js, spoken to over stdin/stdout with JSON lines.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Lab, type LabNs } from '../test/lab/lab';
import { POLL_MS, nsName } from './common';

/** The script the helper processes run. */
const AGENT_MAIN = join(__dirname, 'agent-main.js');

let rtPrefix: string[] | undefined;
/**
 * `chrt -f 10` when real-time scheduling is allowed here: the probe and the
 * D-Bus agent then run the moment they are woken, so their timestamps are not
 * delayed by the very processes they time (on two cores the daemon, dbus and
 * firewalld wake up together). They sleep between events, so this starves
 * nothing. Empty (normal scheduling) where chrt is missing or refused.
 */
export function realtimePrefix(): string[] {
  if (rtPrefix === undefined) {
    try {
      execFileSync('chrt', ['-f', '10', 'true'], { stdio: 'ignore' });
      rtPrefix = ['chrt', '-f', '10'];
    } catch {
      rtPrefix = [];
    }
  }
  return rtPrefix;
}

/**
 * A node process in a lab namespace driven over stdin/stdout with JSON lines
 * (`{id, ...}` in, `{id, ...}` out). Started with `ip netns exec` (which
 * execs), in its own process group; stop() ends it, and the lab's stop()
 * sweeps the namespace in any case.
 */
export class NsAgent {
  private readonly child: ChildProcess;
  private readonly pending = new Map<
    number,
    { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private exited = false;

  constructor(lab: Lab, ns: LabNs, mode: '--probe' | '--dbus', logFile: string) {
    const fd = fs.openSync(logFile, 'a');
    try {
      this.child = spawn(
        'ip',
        ['netns', 'exec', nsName(lab, ns), ...realtimePrefix(), process.execPath, AGENT_MAIN, mode],
        {
          env: lab.env,
          stdio: ['pipe', 'pipe', fd],
          detached: true,
        },
      );
    } finally {
      fs.closeSync(fd);
    }
    onJsonLines(this.child.stdout!, (msg) => {
      const p = this.pending.get(Number(msg.id));
      if (!p) return;
      this.pending.delete(Number(msg.id));
      if (typeof msg.error === 'string') p.reject(new Error(msg.error));
      else p.resolve(msg);
    });
    this.child.on('exit', (code, sig) => {
      this.exited = true;
      for (const p of this.pending.values())
        p.reject(new Error(`${mode} agent exited (${String(code ?? sig)}); see ${logFile}`));
      this.pending.clear();
    });
    this.child.stdin!.on('error', () => undefined);
  }

  request<T = Record<string, unknown>>(msg: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error('agent has exited'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent request ${JSON.stringify(msg)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin!.write(`${JSON.stringify({ ...msg, id })}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
  }
}

/** Result of a probe knock/wait: absolute CLOCK_MONOTONIC times in ns (as strings), ms = t1 - t0. */
export interface ProbeResult {
  /** Right after the last knock (or when waiting began). */
  t0: string;
  /** First connect that succeeded (open) / was refused (closed); null on timeout. */
  t1: string | null;
  ms: number | null;
  how: string;
  attempts: number;
}

export type Want = 'open' | 'closed' | 'none';

/** The client-side probe: knocks and port-22 polling from the client namespace. */
export class Probe {
  constructor(
    private readonly agent: NsAgent,
    private readonly host: string,
  ) {}

  static start(lab: Lab): Probe {
    return new Probe(new NsAgent(lab, 'client', '--probe', join(lab.tmpDir, 'bench-probe.log')), lab.serverAddr);
  }

  /**
   * Knock `ports`, then poll :22 every POLL_MS until it is `want`
   * (closedOnSilence: a connect unanswered for silenceMs counts as closed).
   */
  knock(
    ports: number[],
    want: Want,
    timeoutMs: number,
    extra: { closedOnSilence?: boolean; silenceMs?: number } = {},
  ): Promise<ProbeResult> {
    return this.agent.request<ProbeResult>(
      { op: 'knock', host: this.host, ports, want, timeoutMs, intervalMs: POLL_MS, ...extra },
      timeoutMs + 10_000,
    );
  }

  /** Send one UDP datagram (an SPA packet, as hex) to `port`, then poll :22 until it is `want`; t0 just before the send. */
  spa(payloadHex: string, port: number, want: Want, timeoutMs: number): Promise<ProbeResult> {
    return this.agent.request<ProbeResult>(
      { op: 'spa', host: this.host, payload: payloadHex, port, want, timeoutMs, intervalMs: POLL_MS },
      timeoutMs + 10_000,
    );
  }

  /** Poll :22 from now on until it is `want`. */
  wait(
    want: Want,
    timeoutMs: number,
    extra: { closedOnSilence?: boolean; silenceMs?: number } = {},
  ): Promise<ProbeResult> {
    return this.agent.request<ProbeResult>(
      { op: 'knock', host: this.host, ports: [], want, timeoutMs, intervalMs: POLL_MS, ...extra },
      timeoutMs + 10_000,
    );
  }

  stop(): Promise<void> {
    return this.agent.stop();
  }
}

/** firewalld over D-Bus from the server namespace: the latency floor, and cleanup for the flood bench. */
export class FirewalldAgent {
  constructor(private readonly agent: NsAgent) {}

  static async start(lab: Lab): Promise<FirewalldAgent> {
    const a = new FirewalldAgent(new NsAgent(lab, 'server', '--dbus', join(lab.tmpDir, 'bench-dbus.log')));
    await a.agent.request({ op: 'ping' }); // connects and warms up the bus connection
    return a;
  }

  /** addRichRule(public, rule, 0): t0 before the call, t1 on the reply (ns strings). */
  add(rule: string): Promise<{ t0: string; t1: string }> {
    return this.agent.request({ op: 'add', rule });
  }

  remove(rule: string): Promise<{ t0: string; t1: string }> {
    return this.agent.request({ op: 'remove', rule });
  }

  /** Remove every rich rule of the public zone; resolves how many there were. */
  async clear(): Promise<number> {
    const r = await this.agent.request<{ removed: number }>({ op: 'clear' });
    return r.removed;
  }

  stop(): Promise<void> {
    return this.agent.stop();
  }
}

export const nsDiffMs = (t1: string, t0: string): number => Number(BigInt(t1) - BigInt(t0)) / 1e6;

/** Each line of `input` parsed as a JSON object (both ends of the agents' pipe); lines that are not JSON are skipped. */
export function onJsonLines(
  input: NodeJS.ReadableStream,
  fn: (msg: Record<string, unknown>) => void,
): ReturnType<typeof createInterface> {
  const rl = createInterface({ input });
  rl.on('line', (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    fn(msg);
  });
  return rl;
}
