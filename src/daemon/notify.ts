/**
 * systemd readiness and status (`Type=notify`): sd_notify datagrams to
 * $NOTIFY_SOCKET, sent by the daemon's own process (sdNotify, a few lines of
 * C in vendor/cap-sdnotify.patch, an addon of its own that links no libpcap:
 * Node has no AF_UNIX datagram socket), so knockd.service can say
 * `NotifyAccess=main` and nothing else in the unit (shell commands, the
 * capture process) can change its state.
 * Without NOTIFY_SOCKET (not started by systemd) this does nothing.
 */
import type { Logger } from 'pino';
import { sdNotify } from 'cap/lib/sdnotify';

/** Sends one sd_notify message; the default is the real one. */
export type NotifySend = (socketPath: string, message: string) => void;

export class SystemdNotifier {
  private lastStatus = '';
  private isReady = false;
  private failed = false;
  private readonly socket: string | undefined;

  constructor(
    private readonly log: Logger,
    env: NodeJS.ProcessEnv = process.env,
    private readonly sendTo: NotifySend = sdNotify,
  ) {
    this.socket = env.NOTIFY_SOCKET || undefined;
  }

  private send(fields: string[]): void {
    if (this.socket === undefined) return;
    // A newline would start a field of its own (STATUS=x\nREADY=1): status text is ours, but keep it one line.
    const message = fields.map((f) => f.replace(/[\r\n]+/g, ' ')).join('\n');
    try {
      this.sendTo(this.socket, message);
      this.failed = false;
    } catch (err) {
      // Said once per run of failures, not once a second.
      if (!this.failed)
        this.log.warn(`sd_notify to ${this.socket} failed (${(err as Error).message}); systemd does not see our state`);
      this.failed = true;
    }
  }

  /** READY=1 with a status line; sent once. */
  markReady(status: string): void {
    if (this.isReady) return this.status(status);
    this.isReady = true;
    this.lastStatus = status;
    this.send(['READY=1', `STATUS=${status}`]);
  }

  /** STATUS=...; repeated identical lines are not re-sent. */
  status(status: string): void {
    if (status === this.lastStatus) return;
    this.lastStatus = status;
    this.send([`STATUS=${status}`]);
  }

  /** STOPPING=1: systemctl shows "deactivating" while the doors are closed. */
  stopping(status: string): void {
    this.lastStatus = status;
    this.send(['STOPPING=1', `STATUS=${status}`]);
  }
}
