/**
 * A NOTIFY_SOCKET of our own (python3, SO_PASSCRED like systemd's): receives
 * the daemon's sd_notify datagrams with the sender's pid, one line each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Lab } from '../lab/lab';

const RECEIVER = `
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print("BOUND", flush=True)
while True:
    d, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = -1
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print("pid=%d %s" % (pid, d.decode(errors="replace").replace("\\n", "|")), flush=True)
`;

export class NotifySocket {
  readonly messages: string[] = [];
  private proc: ChildProcess;
  constructor(readonly path: string) {
    this.proc = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    this.proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.messages.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  async bound(lab: Lab): Promise<void> {
    await lab.waitFor(async () => this.messages.includes('BOUND'), 5000);
  }
  find(re: RegExp): string | undefined {
    return this.messages.find((m) => re.test(m));
  }
  close(): void {
    this.proc.kill();
  }
}
