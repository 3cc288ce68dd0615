/** Types for the `systemd-notify` package (it spawns the systemd-notify binary), which ships none. */
declare module 'systemd-notify' {
  import type { ChildProcess } from 'node:child_process';
  interface NotifyOptions {
    ready?: boolean;
    status?: string;
    pid?: number;
    booted?: boolean;
  }
  function notify(opts?: NotifyOptions, callback?: (err: unknown, cmd?: ChildProcess) => void): Promise<ChildProcess>;
  export = notify;
}
