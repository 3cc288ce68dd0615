/**
 * The README's first command: run knockd for real in a self-contained lab.
 *
 * Two network namespaces joined by a veth pair, a private system bus and a
 * real firewalld in the "server" namespace, a real sshd behind it. The
 * project's own knockd.conf is used as is (only the log file is moved into
 * the lab's temp dir). A knock from the "client" namespace opens SSH, a second
 * knock closes it; `firewall-cmd --list-all` is shown before and after.
 * Everything is removed on exit.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireRoot, startLab, type Lab } from './lab';
import { REPO, startKnockd, type RunningDaemon } from '../e2e/helpers';

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string): void => void process.stdout.write(`\n${bold(`==> ${s}`)}\n`);
const indent = (s: string): string => s.replace(/^(?=.)/gm, '    ') + (s.endsWith('\n') || s === '' ? '' : '\n');

async function listAll(lab: Lab): Promise<void> {
  step('firewall-cmd --zone=public --list-all   (server namespace)');
  process.stdout.write(`${indent(await lab.firewallCmd('--zone=public', '--list-all'))}\n`);
}

async function ssh(lab: Lab): Promise<void> {
  step(`client: connect to ${lab.serverAddr}:22 and read the SSH banner`);
  const banner = await lab.sshBanner();
  process.stdout.write(
    indent(banner ? `${banner}   <- connected\n` : 'no answer: the firewall rejects the connection\n'),
  );
}

async function knock(lab: Lab, ports: number[]): Promise<void> {
  const debian = existsSync('/usr/bin/knock');
  const argv = debian
    ? ['knock', '-v', lab.serverAddr, ...ports.map(String)]
    : [process.execPath, join(REPO, 'bin', 'knock'), '-v', lab.serverAddr, ...ports.map(String)];
  step(`client: ${debian ? 'knock' : 'bin/knock'} -v ${lab.serverAddr} ${ports.join(' ')}`);
  const r = await lab.execIn('client', argv);
  process.stdout.write(indent(r.stdout || r.stderr));
}

async function main(): Promise<void> {
  requireRoot();
  step('starting the lab: namespaces, veth, private D-Bus, firewalld, sshd');
  const lab = await startLab();
  let d: RunningDaemon | undefined;
  try {
    process.stdout.write(
      indent(
        `server ${lab.serverNs} (${lab.serverIf} ${lab.serverAddr})  client ${lab.clientNs} (${lab.clientIf} ${lab.clientAddr})\n`,
      ),
    );
    process.stdout.write(indent(`DBUS_SYSTEM_BUS_ADDRESS=${lab.busAddress}\n`));
    await listAll(lab);
    await ssh(lab);

    const conf = (await readFile(join(REPO, 'knockd.conf'), 'utf8')).replace(
      /logfile\s*=.*/i,
      `logfile = ${join(lab.tmpDir, 'knockd.log')}`,
    );
    step(`server: knockd -i ${lab.serverIf} -c knockd.conf   (the project's knockd.conf)`);
    d = await startKnockd(lab, conf);

    await knock(lab, [3333, 4444, 5555]);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, 2000, 20);
    await listAll(lab);
    await ssh(lab);

    await knock(lab, [6666, 7777, 8888]);
    await lab.waitFor(async () => (await lab.richRules()).length === 0, 2000, 20);
    await listAll(lab);
    await ssh(lab);

    step('knockd log');
    process.stdout.write(indent(await d.log()));
  } finally {
    await d?.stop();
    await lab.stop();
  }
  step('lab removed');
}

main().catch((err: unknown) => {
  process.stderr.write(`lab demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
