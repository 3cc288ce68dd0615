/**
 * systemd readiness and status (`Type=notify`), through the `systemd-notify`
 * package, which runs the `systemd-notify` binary: the message comes from a
 * helper process, hence `NotifyAccess=all` in knockd.service. systemd 246 and
 * later make that binary wait on a barrier, so the message is attributed to
 * our unit before the helper exits. Without NOTIFY_SOCKET (not started by
 * systemd) this does nothing.
 */
import type { Logger } from 'pino';
import notify from 'systemd-notify';

export class SystemdNotifier {
  private chain: Promise<void> = Promise.resolve();
  private lastStatus = '';
  private isReady = false;
  private readonly enabled = Boolean(process.env.NOTIFY_SOCKET);

  constructor(private readonly log: Logger) {}

  /** Messages go out one at a time, in order. */
  private send(opts: { ready?: boolean; status: string }): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    this.chain = this.chain.then(() =>
      notify({ ...opts, pid: process.pid }).then(
        () => undefined,
        (err: unknown) => this.log.warn(`systemd-notify failed (${String(err)}); is the systemd-notify binary installed?`),
      ),
    );
    return this.chain;
  }

  /** READY=1 with a status line; sent once. */
  markReady(status: string): Promise<void> {
    if (this.isReady) return this.status(status);
    this.isReady = true;
    this.lastStatus = status;
    return this.send({ ready: true, status });
  }

  /** STATUS=...; repeated identical lines are not re-sent. */
  status(status: string): Promise<void> {
    if (status === this.lastStatus) return this.chain;
    this.lastStatus = status;
    return this.send({ status });
  }
}
