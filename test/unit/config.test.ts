/**
 * Tests for the knockd.conf parser (src/config/parse.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsPromises } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  ConfigError,
  formatIssue,
  loadConfig,
  parseConfigText,
  sequenceText,
  SEQ_MAX,
  MAX_TIMEOUT_SECONDS,
} from '../../src/config/parse';
import type { ParseResult } from '../../src/config/parse';
import type { ConfigIssue, DoorConfig } from '../../src/config/types';
import { IPPROTO_TCP as TCP, IPPROTO_UDP as UDP, TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, TH_URG } from '../../src/decode/types';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function parse(text: string): ParseResult {
  return parseConfigText(text, 'knockd.conf');
}

/** Parses a config that must have no errors; returns its doors and warnings. */
function ok(text: string): { doors: DoorConfig[]; warnings: ConfigIssue[]; r: ParseResult } {
  const r = parse(text);
  assert.deepEqual(r.errors.map(formatIssue), [], 'unexpected errors');
  assert.ok(r.config, 'config expected');
  assert.equal(r.config.warnings, r.warnings);
  return { doors: r.config.doors, warnings: r.warnings, r };
}

/** Parses a config that must give exactly one error; checks its line and message. */
function oneError(text: string, line: number, message: RegExp, door?: string): ConfigIssue {
  const r = parse(text);
  assert.equal(r.config, undefined, 'no config when there is an error');
  assert.equal(r.errors.length, 1, `expected one error, got:\n${r.errors.map(formatIssue).join('\n')}`);
  const e = r.errors[0] as ConfigIssue;
  assert.equal(e.severity, 'error');
  assert.equal(e.file, 'knockd.conf');
  assert.equal(e.line, line, formatIssue(e));
  assert.match(e.message, message);
  assert.equal(e.door, door);
  return e;
}

/** The warnings matching `message`; asserts there is exactly one, on `line`. */
function oneWarning(warnings: ConfigIssue[], line: number, message: RegExp, door?: string): ConfigIssue {
  const hits = warnings.filter((w) => message.test(w.message));
  assert.equal(hits.length, 1, `expected one warning ${message}, got:\n${warnings.map(formatIssue).join('\n')}`);
  const w = hits[0] as ConfigIssue;
  assert.equal(w.severity, 'warning');
  assert.equal(w.line, line, formatIssue(w));
  assert.equal(w.door, door);
  return w;
}

/** A minimal valid door, to wrap directives under test. */
function door(body: string, name = 'd'): string {
  return `[${name}]\nsequence = 1000,2000\ncommand = true\n${body}\n`;
}

/** A door as the parser builds it with every default, for deepEqual. */
function defaults(over: Partial<DoorConfig>): DoorConfig {
  return {
    name: 'd',
    line: 1,
    sequence: [],
    seqTimeout: 25,
    tcpFlags: { set: 0, clear: 0 },
    cmdTimeout: 10,
    cmdTimeoutSet: false,
    lines: {},
    ...over,
  };
}

const HEADERLESS = /directives outside any \[section\]; knockd 0\.8 rejects this file/;

// ---------------------------------------------------------------------------
// The project's own knockd.conf
// ---------------------------------------------------------------------------

const PROJECT_CONF = `[options]
    logfile = /var/log/knockd.log

[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = 15
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = 3600

[closeSSH]
    sequence          = 6666,7777,8888
    seq_timeout       = 15
    tcpflags          = syn
    firewalld_action  = close
    firewalld_zone    = public
    firewalld_service = ssh
`;

test('the project knockd.conf parses to exactly the expected doors', () => {
  const { doors, warnings, r } = ok(PROJECT_CONF);
  assert.deepEqual(warnings, []);
  assert.deepEqual(r.config?.options, { logFile: '/var/log/knockd.log', useSyslog: false });
  assert.equal(r.config?.file, 'knockd.conf');
  assert.deepEqual(doors, [
    {
      name: 'openSSH',
      line: 4,
      sequence: [
        { port: 3333, proto: TCP },
        { port: 4444, proto: TCP },
        { port: 5555, proto: TCP },
      ],
      seqTimeout: 15,
      tcpFlags: { set: TH_SYN, clear: 0 },
      cmdTimeout: 3600,
      cmdTimeoutSet: true,
      firewalld: { action: 'open', zone: 'public', services: ['ssh'], ports: [] },
      lines: { SEQUENCE: 5, SEQ_TIMEOUT: 6, TCPFLAGS: 7, FIREWALLD_ACTION: 8, FIREWALLD_ZONE: 9, FIREWALLD_SERVICE: 10, CMD_TIMEOUT: 11 },
    },
    {
      name: 'closeSSH',
      line: 13,
      sequence: [
        { port: 6666, proto: TCP },
        { port: 7777, proto: TCP },
        { port: 8888, proto: TCP },
      ],
      seqTimeout: 15,
      tcpFlags: { set: TH_SYN, clear: 0 },
      cmdTimeout: 0, // firewalld door without cmd_timeout: no rule timeout
      cmdTimeoutSet: false,
      firewalld: { action: 'close', zone: 'public', services: ['ssh'], ports: [] },
      lines: { SEQUENCE: 14, SEQ_TIMEOUT: 15, TCPFLAGS: 16, FIREWALLD_ACTION: 17, FIREWALLD_ZONE: 18, FIREWALLD_SERVICE: 19 },
    },
  ]);
});

// ---------------------------------------------------------------------------
// Seed configs, as printed in two tutorials (no section headers)
// ---------------------------------------------------------------------------

const SEED_000 = `logfile = /var/log/knockd.log

sequence = 7000,8000,9000
seq_timeout = 15
command = /sbin/iptables -I INPUT -s %IP% -p tcp –dport 22 -j ACCEPT
cmd_timeout = 10
tcpflags = syn
stop_command = /sbin/iptables -D INPUT -s %IP% -p tcp –dport 22 -j ACCEPT
`;

const SEED_004 = `logfile = /var/log/knockd.log
Sequence = 3333,4444,5555
Seq_timeout = 15
Tcpflags = syn
Command = /bin/firewall-cmd --zone=public --add-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"

Sequence = 6666,7777,8888
Seq_timeout = 15
Tcpflags = syn
Command = /bin/firewall-cmd --zone=public --remove-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"
`;

const SEED_000_DOOR: Partial<DoorConfig> = {
  sequence: [
    { port: 7000, proto: TCP },
    { port: 8000, proto: TCP },
    { port: 9000, proto: TCP },
  ],
  seqTimeout: 15,
  tcpFlags: { set: TH_SYN, clear: 0 },
  cmdTimeout: 10,
  cmdTimeoutSet: true,
  startCommand: '/sbin/iptables -I INPUT -s %IP% -p tcp \u2013dport 22 -j ACCEPT',
  stopCommand: '/sbin/iptables -D INPUT -s %IP% -p tcp \u2013dport 22 -j ACCEPT',
};

const RICH = (op: string): string =>
  `/bin/firewall-cmd --zone=public --${op}-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"`;

test('seed 000 (header-less) parses to one door, with header and typographic-dash warnings', () => {
  const { doors, warnings, r } = ok(SEED_000);
  assert.deepEqual(r.config?.options, { logFile: '/var/log/knockd.log', useSyslog: false });
  assert.equal(doors.length, 1);
  const d = doors[0] as DoorConfig;
  assert.deepEqual(
    { ...d, lines: undefined },
    { ...defaults({ name: 'door1', line: 3, ...SEED_000_DOOR }), lines: undefined },
  );
  assert.deepEqual(d.lines, { SEQUENCE: 3, SEQ_TIMEOUT: 4, START_COMMAND: 5, CMD_TIMEOUT: 6, TCPFLAGS: 7, STOP_COMMAND: 8 });

  oneWarning(warnings, 1, /Add a header line "\[options\]" above line 1\./);
  const h = oneWarning(warnings, 3, /such as "\[door1\]"/, 'door1');
  assert.equal(
    formatIssue(h),
    'knockd.conf:3: warning: [door1] directives outside any [section]; knockd 0.8 rejects this file. ' +
      'Add a header line such as "[door1]" above line 3.',
  );
  const dashes = warnings.filter((w) => /looks like `--dport` \(typographic dash\)/.test(w.message));
  assert.deepEqual(
    dashes.map((w) => [w.line, w.door]),
    [
      [5, 'door1'],
      [8, 'door1'],
    ],
  );
  assert.match(dashes[0]?.message ?? '', /^command: `\u2013dport` looks like `--dport`/);
  assert.equal(warnings.length, 4, warnings.map(formatIssue).join('\n'));
});

test('seed 000 with headers added: same door, no header warning', () => {
  const text = `[options]\n${SEED_000.replace('sequence =', '[openSSH]\nsequence =')}`;
  const { doors, warnings, r } = ok(text);
  assert.deepEqual(r.config?.options, { logFile: '/var/log/knockd.log', useSyslog: false });
  assert.equal(doors.length, 1);
  assert.deepEqual({ ...doors[0], lines: undefined }, { ...defaults({ name: 'openSSH', line: 4, ...SEED_000_DOOR }), lines: undefined });
  assert.equal(warnings.filter((w) => HEADERLESS.test(w.message)).length, 0);
  assert.deepEqual(
    warnings.map((w) => w.line),
    [7, 10],
    'only the two typographic-dash warnings',
  );
});

test('seed 004 (header-less) parses to two doors, each with a header warning', () => {
  const { doors, warnings, r } = ok(SEED_004);
  assert.deepEqual(r.config?.options, { logFile: '/var/log/knockd.log', useSyslog: false });
  const expected = (name: string, line: number, ports: number[], op: string): DoorConfig =>
    defaults({
      name,
      line,
      sequence: ports.map((port) => ({ port, proto: TCP })),
      seqTimeout: 15,
      tcpFlags: { set: TH_SYN, clear: 0 },
      startCommand: RICH(op),
      lines: { SEQUENCE: line, SEQ_TIMEOUT: line + 1, TCPFLAGS: line + 2, START_COMMAND: line + 3 },
    });
  assert.deepEqual(doors, [expected('door1', 2, [3333, 4444, 5555], 'add'), expected('door2', 7, [6666, 7777, 8888], 'remove')]);
  oneWarning(warnings, 1, /Add a header line "\[options\]" above line 1\./);
  oneWarning(warnings, 2, /Add a header line such as "\[door1\]" above line 2\./, 'door1');
  oneWarning(warnings, 7, /Add a header line such as "\[door2\]" above line 7\./, 'door2');
  assert.equal(warnings.length, 3, warnings.map(formatIssue).join('\n'));
});

test('seed 004 with headers added: same doors, no warnings', () => {
  const text = `[options]\n${SEED_004}`
    .replace('Sequence = 3333', '[openSSH]\nSequence = 3333')
    .replace('Sequence = 6666', '[closeSSH]\nSequence = 6666');
  const { doors, warnings } = ok(text);
  assert.deepEqual(warnings, []);
  assert.deepEqual(
    doors.map((d) => [d.name, d.line, sequenceText(d), d.seqTimeout, d.tcpFlags.set, d.startCommand]),
    [
      ['openSSH', 3, '3333:tcp,4444:tcp,5555:tcp', 15, TH_SYN, RICH('add')],
      ['closeSSH', 9, '6666:tcp,7777:tcp,8888:tcp', 15, TH_SYN, RICH('remove')],
    ],
  );
});

// ---------------------------------------------------------------------------
// Header-less variations
// ---------------------------------------------------------------------------

test('header-less: a door directive before the first Sequence starts door1', () => {
  const { doors, warnings } = ok('seq_timeout = 5\ncommand = a\nsequence = 1,2\n\nsequence = 3,4\ncommand = b\n');
  assert.deepEqual(
    doors.map((d) => [d.name, d.line, sequenceText(d), d.seqTimeout, d.startCommand]),
    [
      ['door1', 1, '1:tcp,2:tcp', 5, 'a'],
      ['door2', 5, '3:tcp,4:tcp', 25, 'b'],
    ],
  );
  oneWarning(warnings, 1, /such as "\[door1\]" above line 1\./, 'door1');
  oneWarning(warnings, 5, /such as "\[door2\]" above line 5\./, 'door2');
  assert.equal(warnings.length, 2);
});

test('header-less options at the top, then sections (mixed)', () => {
  const { doors, warnings, r } = ok('UseSyslog\nLogFile = /tmp/k.log\n\n[open]\nsequence = 1,2\ncommand = x\n');
  assert.deepEqual(r.config?.options, { useSyslog: true, logFile: '/tmp/k.log' });
  assert.deepEqual(doors.map((d) => d.name), ['open']);
  assert.equal(warnings.length, 1);
  oneWarning(warnings, 1, /Add a header line "\[options\]" above line 1\./);
});

test('header-less door names skip names used by [sections] later in the file', () => {
  const { doors } = ok('sequence = 1,2\ncommand = a\n[door1]\nsequence = 3,4\ncommand = b\n');
  assert.deepEqual(doors.map((d) => d.name), ['door2', 'door1']);
});

test('header-less One_Time_Sequences also starts a new door', () => {
  const { doors } = ok('sequence = 1,2\ncommand = a\none_time_sequences = /etc/k/otp\ncommand = b\n');
  assert.deepEqual(
    doors.map((d) => [d.name, d.oneTimeSequences, d.startCommand]),
    [
      ['door1', undefined, 'a'],
      ['door2', '/etc/k/otp', 'b'],
    ],
  );
});

// ---------------------------------------------------------------------------
// Every directive
// ---------------------------------------------------------------------------

test('[options]: LogFile, UseSyslog (bare), PidFile, Interface', () => {
  const { r } = ok('[options]\nLogFile = /var/log/k.log\nUseSyslog\nPidFile = /run/knockd.pid\nInterface = enp1s0\n' + door(''));
  assert.deepEqual(r.config?.options, { logFile: '/var/log/k.log', useSyslog: true, pidFile: '/run/knockd.pid', interface: 'enp1s0' });
});

test('[options] defaults, and [OPTIONS] in any case', () => {
  assert.deepEqual(ok(door('')).r.config?.options, { useSyslog: false });
  assert.deepEqual(ok('[OPTIONS]\nlogfile = /a\n' + door('')).r.config?.options, { useSyslog: false, logFile: '/a' });
  assert.deepEqual(ok('[Options]\npidfile = /b\n' + door('')).r.config?.options, { useSyslog: false, pidFile: '/b' });
});

test('UseSyslog = yes/true/1/on and no/false/0/off', () => {
  for (const v of ['yes', 'TRUE', '1', 'On']) {
    assert.equal(ok(`[options]\nUseSyslog = ${v}\n${door('')}`).r.config?.options.useSyslog, true, v);
  }
  for (const v of ['no', 'False', '0', 'OFF']) {
    assert.equal(ok(`[options]\nusesyslog\nUseSyslog = ${v}\n${door('')}`).r.config?.options.useSyslog, false, v);
  }
});

test('UseSyslog with another value is an error', () => {
  oneError('[options]\nUseSyslog = maybe\n' + door(''), 2, /UseSyslog expects yes or no.*"maybe"/);
});

test('bare UseSyslog inside a door works (as in knockd) with a warning', () => {
  const { r, warnings } = ok('[d]\nsequence = 1,2\ncommand = x\nUseSyslog\n');
  assert.equal(r.config?.options.useSyslog, true);
  oneWarning(warnings, 4, /UseSyslog is a global option/, 'd');
});

test('every door directive, with aliases', () => {
  const text = [
    '[everything]', //                                  1
    'Sequence = 2222:udp, 3333:TCP ,4444:Udp,5555', //    2
    'Timeout = 7', //                                     3
    'TCPFlags = fin,syn,rst,psh,ack,urg', //             4
    'Cmd_Timeout = 0', //                                 5
    'Target = 192.0.2.10', //                             6
    'Command = /bin/open %IP%', //                        7
    'Command_6 = /bin/open6 %IP%', //                     8
    'Stop_Command = /bin/close %IP%', //                  9
    'Stop_Command_6 =', //                               10: empty: "do nothing"
    '[otp]', //                                          11
    'One_Time_Sequences = /etc/knockd/smtp_sequences', // 12
    'Seq_Timeout = 30', //                               13
    'TCPFlags = !fin,!syn,!rst,!psh,!ack,!urg', //       14
    'Target = 2001:db8::1', //                           15
    'Start_Command = /bin/a', //                         16
    'Start_Command_6 = /bin/b', //                       17
  ].join('\n');
  const { doors, warnings } = ok(text);
  assert.deepEqual(warnings, []);
  assert.deepEqual(doors, [
    {
      name: 'everything',
      line: 1,
      sequence: [
        { port: 2222, proto: UDP },
        { port: 3333, proto: TCP },
        { port: 4444, proto: UDP },
        { port: 5555, proto: TCP },
      ],
      seqTimeout: 7,
      tcpFlags: { set: TH_FIN | TH_SYN | TH_RST | TH_PSH | TH_ACK | TH_URG, clear: 0 },
      cmdTimeout: 0,
      cmdTimeoutSet: true,
      target: '192.0.2.10',
      startCommand: '/bin/open %IP%',
      startCommand6: '/bin/open6 %IP%',
      stopCommand: '/bin/close %IP%',
      stopCommand6: '',
      lines: { SEQUENCE: 2, SEQ_TIMEOUT: 3, TCPFLAGS: 4, CMD_TIMEOUT: 5, TARGET: 6, START_COMMAND: 7, START_COMMAND_6: 8, STOP_COMMAND: 9, STOP_COMMAND_6: 10 },
    },
    {
      name: 'otp',
      line: 11,
      sequence: [],
      seqTimeout: 30,
      tcpFlags: { set: 0, clear: 0x3f },
      cmdTimeout: 10,
      cmdTimeoutSet: false,
      oneTimeSequences: '/etc/knockd/smtp_sequences',
      target: '2001:db8::1',
      startCommand: '/bin/a',
      startCommand6: '/bin/b',
      lines: { ONE_TIME_SEQUENCES: 12, SEQ_TIMEOUT: 13, TCPFLAGS: 14, TARGET: 15, START_COMMAND: 16, START_COMMAND_6: 17 },
    },
  ]);
});

test('key case variations: Sequence, SEQ_TIMEOUT, tcpflags, sTaRt_CoMmAnD', () => {
  const { doors } = ok('[d]\nSequence = 1,2\nSEQ_TIMEOUT = 9\ntcpflags = SYN,!Ack\nsTaRt_CoMmAnD = go\n');
  const d = doors[0] as DoorConfig;
  assert.equal(sequenceText(d), '1:tcp,2:tcp');
  assert.equal(d.seqTimeout, 9);
  assert.deepEqual(d.tcpFlags, { set: TH_SYN, clear: TH_ACK });
  assert.equal(d.startCommand, 'go');
});

test('defaults: Seq_Timeout 25, Cmd_Timeout 10, any TCP flags, protocol tcp', () => {
  const d = ok(door('')).doors[0] as DoorConfig;
  assert.equal(d.seqTimeout, 25);
  assert.equal(d.cmdTimeout, 10);
  assert.equal(d.cmdTimeoutSet, false);
  assert.deepEqual(d.tcpFlags, { set: 0, clear: 0 });
  assert.deepEqual(d.sequence, [
    { port: 1000, proto: TCP },
    { port: 2000, proto: TCP },
  ]);
});

test('Sequence: port 0 and 65535, 32 ports, and sequenceText', () => {
  const ports = Array.from({ length: SEQ_MAX }, (_, i) => (i === 0 ? '0' : i === 1 ? '65535:udp' : String(i)));
  const d = ok(`[d]\nsequence = ${ports.join(',')}\nseq_timeout = 60\ncommand = x\n`).doors[0] as DoorConfig;
  assert.equal(d.sequence.length, 32);
  assert.deepEqual(d.sequence.slice(0, 2), [
    { port: 0, proto: TCP },
    { port: 65535, proto: UDP },
  ]);
  assert.equal(sequenceText({ sequence: [{ port: 3333, proto: TCP }, { port: 4444, proto: TCP }, { port: 5555, proto: UDP }] }), '3333:tcp,4444:tcp,5555:udp');
});

test('firewalld directives: ports, several services, no zone, timeouts', () => {
  const { doors } = ok(
    [
      '[web]',
      'sequence = 1,2',
      'firewalld_action = OPEN',
      'firewalld_service = http, https,my-svc.v2+x',
      'firewalld_port = 8080/tcp, 60000-61000/UDP,9/sctp,10-10/dccp',
      '[webclose]',
      'sequence = 3,4',
      'FIREWALLD_ACTION = close',
      'Firewalld_Port = 8080/tcp',
      'firewalld_zone = internal/x-1',
    ].join('\n'),
  );
  const [open, close] = doors as [DoorConfig, DoorConfig];
  assert.deepEqual(open.firewalld, {
    action: 'open',
    services: ['http', 'https', 'my-svc.v2+x'],
    ports: [
      { port: '8080', proto: 'tcp' },
      { port: '60000-61000', proto: 'udp' },
      { port: '9', proto: 'sctp' },
      { port: '10-10', proto: 'dccp' },
    ],
  });
  assert.equal(open.cmdTimeout, 0, 'firewalld open door without cmd_timeout: no timeout');
  assert.equal(open.cmdTimeoutSet, false);
  assert.deepEqual(close.firewalld, { action: 'close', zone: 'internal/x-1', services: [], ports: [{ port: '8080', proto: 'tcp' }] });
  const timed = ok('[t]\nsequence = 1,2\nfirewalld_action = open\nfirewalld_service = ssh\ncmd_timeout = 0\n').doors[0] as DoorConfig;
  assert.equal(timed.cmdTimeout, 0);
  assert.equal(timed.cmdTimeoutSet, true);
});

// ---------------------------------------------------------------------------
// Values are kept byte for byte
// ---------------------------------------------------------------------------

test('a command with ; # = quotes and backslashes round-trips byte for byte', () => {
  const cmd = `/bin/sh -c 'logger "a=b; c#d" \\; printf "%s\\n" x' ; echo \\\\ "y=z" # x ; = \\'`;
  const d = ok(`[d]\nsequence = 1,2\nstart_command = ${cmd}\nstop_command=${cmd}   \t\n`).doors[0] as DoorConfig;
  assert.equal(d.startCommand, cmd);
  assert.equal(d.stopCommand, cmd);
});

test('a trailing comment-like "# x" stays in the value', () => {
  const d = ok("[d]\nsequence = 1,2\ncommand = /bin/sh -c 'logger a; logger b' # x\n").doors[0] as DoorConfig;
  assert.equal(d.startCommand, "/bin/sh -c 'logger a; logger b' # x");
});

test('only the first = splits key and value', () => {
  const d = ok('[d]\nsequence = 1,2\ncommand==a=b==\n').doors[0] as DoorConfig;
  assert.equal(d.startCommand, '=a=b==');
});

test('comments: only lines whose first non-blank character is #', () => {
  const { doors } = ok('# top\n  \t# indented comment\n[d]\n#sequence = 9,9\nsequence = 1,2\n\n\t\ncommand = x\n');
  assert.equal(sequenceText(doors[0] as DoorConfig), '1:tcp,2:tcp');
});

test('CRLF line endings', () => {
  const { doors, r } = ok(PROJECT_CONF.replace(/\n/g, '\r\n'));
  assert.equal(r.config?.options.logFile, '/var/log/knockd.log');
  assert.deepEqual(doors, ok(PROJECT_CONF).doors);
  const d = ok('[d]\r\nsequence = 1,2\r\ncommand = echo "a b" \r\n').doors[0] as DoorConfig;
  assert.equal(d.startCommand, 'echo "a b"');
});

// ---------------------------------------------------------------------------
// Errors (each with its line)
// ---------------------------------------------------------------------------

test('error: empty section name', () => {
  oneError('[]\nsequence = 1\n' + door(''), 1, /empty section name/);
});

test('error: malformed section header', () => {
  oneError('[d] # comment\n' + door('', 'e'), 1, /malformed section header/);
});

test('error: duplicate door name', () => {
  // door('') is 4 lines (the last one empty): the second header is line 5.
  oneError(door('') + door(''), 5, /duplicate door name: \[d\] is already defined at line 1/, 'd');
});

test('error: a line without = (syntax error)', () => {
  oneError(door('frobnicate'), 4, /syntax error: "frobnicate"/, 'd');
  oneError(door('sequence 1,2,3'), 4, /"sequence 1,2,3" is missing "=": write "Sequence = 1,2,3"/, 'd');
  oneError(door('Stop_Command'), 4, /Stop_Command needs a value/, 'd');
});

test('error: missing key before =', () => {
  oneError(door('= x'), 4, /missing directive name/, 'd');
});

test('error: unknown option key, naming it', () => {
  oneError('[options]\nLogfiel = /x\n' + door(''), 2, /unknown option "Logfiel" in \[options\].*did you mean LogFile\?/);
  oneError('[options]\nVerbose = 1\n' + door(''), 2, /unknown option "Verbose"/);
});

test('error: door directive in [options] and option in a door', () => {
  oneError('[options]\nsequence = 1,2\n' + door(''), 2, /"sequence" is a door directive and cannot be used in \[options\]/);
  oneError(door('logfile = /x'), 4, /"logfile" is a global option and cannot be used in a door/, 'd');
});

test('error: unknown door key, with a suggestion for near misses', () => {
  oneError(door('Seq_Timout = 5'), 4, /^unknown directive "Seq_Timout" \(did you mean Seq_Timeout\?\)$/, 'd');
  oneError(door('tcpflag = syn'), 4, /did you mean TCPFlags\?/, 'd');
  oneError(door('firewalld-action = open'), 4, /did you mean firewalld_action\?/, 'd');
  oneError(door('banana = 1'), 4, /^unknown directive "banana"$/, 'd');
  oneError('foo = bar\n' + door(''), 1, /^unknown directive "foo"$/);
});

test('error: Sequence items (non-numeric, empty, out of range, protocol, too many)', () => {
  const seq = (s: string): string => `[d]\ncommand = x\nsequence = ${s}\n`;
  oneError(seq('1000,abc,3000'), 3, /invalid port "abc" in Sequence/, 'd');
  oneError(seq('1000,,3000'), 3, /empty item in Sequence "1000,,3000"/, 'd');
  oneError(seq('1000,'), 3, /empty item/, 'd');
  oneError(seq('1000,65536'), 3, /port 65536 in Sequence is out of range/, 'd');
  oneError(seq('-1,2'), 3, /invalid port "-1"/, 'd');
  oneError(seq('1000:icmp,2'), 3, /unknown protocol "icmp" in Sequence item "1000:icmp"/, 'd');
  oneError(seq('1000:,2'), 3, /unknown protocol ""/, 'd');
  oneError(seq('1000:tcp:udp'), 3, /bad Sequence item "1000:tcp:udp"/, 'd');
  oneError(seq(''), 3, /Sequence is empty/, 'd');
  const many = Array.from({ length: SEQ_MAX + 1 }, (_, i) => String(i + 1)).join(',');
  oneError(seq(many) + 'seq_timeout = 60\n', 3, /Sequence has 33 ports; knockd allows at most 32/, 'd');
});

test('all errors are collected, not just the first', () => {
  const r = parse('[d]\nsequence = 1,x\nseq_timeout = soon\ntcpflags = sin\n[]\n');
  assert.equal(r.config, undefined);
  assert.deepEqual(
    r.errors.map((e) => e.line),
    [2, 3, 4, 5],
  );
});

test('error: Seq_Timeout / Timeout must be a positive whole number', () => {
  oneError(door('seq_timeout = 0'), 4, /seq_timeout must be at least 1 second/, 'd');
  oneError(door('Timeout = 15s'), 4, /Timeout must be a whole number of seconds, got "15s"/, 'd');
  oneError(door('seq_timeout = -3'), 4, /whole number/, 'd');
  oneError(door('seq_timeout ='), 4, /whole number/, 'd');
  oneError(door(`seq_timeout = ${MAX_TIMEOUT_SECONDS + 1}`), 4, /too long/, 'd');
});

test('error: Cmd_Timeout must be a non-negative whole number', () => {
  oneError(door('cmd_timeout = -1'), 4, /cmd_timeout must be a whole number of seconds, got "-1"/, 'd');
  oneError(door('Cmd_Timeout = 1.5'), 4, /whole number/, 'd');
  assert.equal((ok(door('cmd_timeout = 0')).doors[0] as DoorConfig).cmdTimeout, 0);
});

test('error: unknown TCP flag, formatted as knockd.conf:line: error: [door] ...', () => {
  const e = oneError(door('tcpflags = syn,sin'), 4, /unknown TCP flag "sin"/, 'd');
  assert.equal(formatIssue(e), 'knockd.conf:4: error: [d] unknown TCP flag "sin" (expected fin, syn, rst, psh, ack, urg, each optionally with !)');
  const r = parse('[openSSH]\nsequence = 1,2\ncommand = x\n\n\n\n\n\n\n\n\ntcpflags = sin\n');
  assert.equal(
    formatIssue(r.errors[0] as ConfigIssue),
    'knockd.conf:12: error: [openSSH] unknown TCP flag "sin" (expected fin, syn, rst, psh, ack, urg, each optionally with !)',
  );
  oneError(door('tcpflags = syn,,ack'), 4, /empty item in TCPFlags/, 'd');
  oneError(door('tcpflags ='), 4, /TCPFlags is empty/, 'd');
});

test('error: a TCP flag both set and negated', () => {
  oneError(door('tcpflags = syn,ack,!SYN'), 4, /TCP flag "syn" is both required and excluded/, 'd');
});

test('error: Target must be an IPv4 or IPv6 address', () => {
  oneError(door('target = example.com'), 4, /Target "example\.com" is not an IPv4 or IPv6 address/, 'd');
  oneError(door('target = 10.0.0.0/8'), 4, /not an IPv4 or IPv6 address/, 'd');
  oneError(door('target = 256.1.1.1'), 4, /not an IPv4 or IPv6 address/, 'd');
  oneError(door('target = 010.0.0.1'), 4, /not an IPv4 or IPv6 address/, 'd'); // inet_pton: no leading zeros
  oneError(door('target = fe80::1%eth0'), 4, /zone index/, 'd');
  oneError(door('target ='), 4, /Target is empty/, 'd');
  assert.equal((ok(door('target = ::ffff:192.0.2.1')).doors[0] as DoorConfig).target, '::ffff:192.0.2.1');
});

test('error: One_Time_Sequences without a path', () => {
  oneError('[d]\ncommand = x\none_time_sequences =\n', 3, /One_Time_Sequences needs the path/, 'd');
});

const fw = (body: string): string => `[fw]\nsequence = 1,2\n${body}\n`;

test('error: firewalld_action must be open or close', () => {
  oneError(fw('firewalld_action = opne\nfirewalld_service = ssh'), 3, /firewalld_action must be "open" or "close", got "opne"/, 'fw');
});

test('error: firewalld_zone with spaces, quotes or too long', () => {
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = my zone'), 5, /invalid firewalld_zone "my zone"/, 'fw');
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = "public"'), 5, /invalid firewalld_zone/, 'fw');
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = abcdefghijklmnopqr'), 5, /invalid firewalld_zone/, 'fw');
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone ='), 5, /firewalld_zone is empty/, 'fw');
});

test('error: firewalld_service names', () => {
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh,my service'), 4, /invalid firewalld service name "my service"/, 'fw');
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh,'), 4, /empty item in firewalld_service/, 'fw');
  oneError(fw('firewalld_action = open\nfirewalld_service ='), 4, /firewalld_service is empty/, 'fw');
});

test('error: firewalld_port forms', () => {
  const p = (v: string, re: RegExp): void => {
    oneError(fw(`firewalld_action = open\nfirewalld_port = ${v}`), 4, re, 'fw');
  };
  p('22', /invalid firewalld_port "22" \(expected PORT\/PROTO/);
  p('ssh/tcp', /invalid firewalld_port "ssh\/tcp"/);
  p('0/tcp', /port 0 in firewalld_port "0\/tcp" is out of range \(1-65535\)/);
  p('22-70000/tcp', /port 70000 .* out of range/);
  p('2000-1000/udp', /port range 2000-1000 .* is not ascending/);
  p('22/icmp', /unknown protocol "icmp" in firewalld_port "22\/icmp"/);
  p('22/tcp,,23/tcp', /empty item in firewalld_port/);
  p('', /firewalld_port is empty/);
});

test('error: a door without a sequence', () => {
  oneError('[options]\n\n[lonely]\ncommand = x\n', 3, /door has no knock sequence/, 'lonely');
});

test('error: firewalld_action without firewalld_service or firewalld_port', () => {
  oneError(fw('firewalld_action = open\nfirewalld_zone = public'), 3, /firewalld_action needs firewalld_service and\/or firewalld_port/, 'fw');
});

test('error: firewalld_service/port/zone without firewalld_action', () => {
  oneError(fw('command = x\nfirewalld_service = ssh'), 4, /firewalld_service does nothing without "firewalld_action = open"/, 'fw');
  oneError(fw('command = x\nfirewalld_port = 22/tcp'), 4, /firewalld_port does nothing without/, 'fw');
  oneError(fw('command = x\nfirewalld_zone = public'), 4, /firewalld_zone does nothing without/, 'fw');
});

test('error: firewalld_action together with shell commands', () => {
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\nstart_command = /bin/true'),
    5,
    /Start_Command cannot be combined with firewalld_action \(line 3\)/,
    'fw',
  );
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh\ncommand = /bin/true'), 5, /Start_Command cannot be combined/, 'fw');
  oneError(fw('firewalld_action = open\nfirewalld_service = ssh\nstop_command = /bin/true'), 5, /Stop_Command cannot be combined/, 'fw');
});

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

test('warning: a directive given twice (last one wins), aliases included', () => {
  const { doors, warnings } = ok('[d]\nsequence = 1,2\nseq_timeout = 5\ncommand = a\nTimeout = 9\nstart_command = b\n');
  const d = doors[0] as DoorConfig;
  assert.equal(d.seqTimeout, 9);
  assert.equal(d.startCommand, 'b');
  oneWarning(warnings, 5, /^Timeout \(alias of Seq_Timeout\) repeats Seq_Timeout from line 3; the last one \(line 5\) wins/, 'd');
  oneWarning(warnings, 6, /^start_command repeats Start_Command from line 4/, 'd');
  const opt = ok('[options]\nlogfile = /a\nLOGFILE = /b\n' + door(''));
  assert.equal(opt.r.config?.options.logFile, '/b');
  oneWarning(opt.warnings, 3, /LogFile is given twice \(lines 2 and 3\)/);
});

test('warning: typographic dashes, curly quotes and non-breaking spaces in commands', () => {
  const { warnings } = ok(
    [
      '[d]',
      'sequence = 1,2',
      'start_command = iptables \u2014dport 22 \u2013 x',
      'stop_command = logger \u201Chello\u201D \u2018x\u2019',
      'start_command_6 = logger\u00A0hi',
      'stop_command_6 = logger --dport "ok" \'fine\'',
    ].join('\n'),
  );
  oneWarning(warnings, 3, /^start_command: `\u2014dport` looks like `--dport` \(typographic dash\)/, 'd');
  oneWarning(warnings, 3, /typographic dash "\u2013" \(U\+2013\)/, 'd');
  oneWarning(warnings, 4, /typographic quotes \u201C \u201D \u2018 \u2019 \(U\+201C, U\+201D, U\+2018, U\+2019\)/, 'd');
  oneWarning(warnings, 5, /non-breaking space \(U\+00A0\)/, 'd');
  assert.equal(warnings.length, 4, warnings.map(formatIssue).join('\n'));
});

test('warning: the same sequence in two doors', () => {
  const { warnings } = ok('[a]\nsequence = 1,2:udp\ncommand = x\n[b]\nsequence = 1, 2:UDP\ncommand = y\n');
  oneWarning(warnings, 5, /same knock sequence \(1:tcp,2:udp\) as door \[a\] \(line 2\): one knock triggers both doors/, 'b');
});

test('no same-sequence warning when TCP flag rules cannot both match', () => {
  const { warnings } = ok('[a]\nsequence = 1,2\ntcpflags = syn\ncommand = x\n[b]\nsequence = 1,2\ntcpflags = !syn\ncommand = y\n');
  assert.deepEqual(warnings, []);
});

test('warning: one sequence a prefix of another', () => {
  const { warnings } = ok('[long]\nsequence = 1,2,3\ncommand = x\n[short]\nsequence = 1,2\ncommand = y\n');
  oneWarning(warnings, 2, /starts with the whole sequence of door \[short\] \(line 5\).*after 2 ports/, 'long');
  assert.equal(warnings.length, 1);
  assert.deepEqual(ok('[a]\nsequence = 1,2\ncommand = x\n[b]\nsequence = 1,3\ncommand = y\n').warnings, []);
});

test('warning: Seq_Timeout shorter than (ports - 1) seconds', () => {
  const { warnings } = ok('[d]\nsequence = 1,2,3,4\nseq_timeout = 2\ncommand = x\n');
  oneWarning(warnings, 3, /Seq_Timeout is 2 s for a 4-port sequence/, 'd');
  assert.deepEqual(ok('[d]\nsequence = 1,2,3,4\nseq_timeout = 3\ncommand = x\n').warnings, []);
});

test('warning: a door that does nothing but log OPEN SESAME', () => {
  const { warnings } = ok('[options]\n[idle]\nsequence = 1,2\n');
  oneWarning(warnings, 2, /does nothing but log "OPEN SESAME"/, 'idle');
  oneWarning(ok('[idle]\nsequence = 1,2\ncommand =\n').warnings, 1, /does nothing/, 'idle');
  assert.deepEqual(ok('[otp]\none_time_sequences = /x\n').warnings, []);
  assert.deepEqual(ok('[stop]\nsequence = 1,2\nstop_command = x\n').warnings, []);
});

test('warning: Cmd_Timeout on a firewalld close door', () => {
  const { warnings } = ok(fw('firewalld_action = close\nfirewalld_service = ssh\ncmd_timeout = 60'));
  oneWarning(warnings, 5, /Cmd_Timeout has no effect with firewalld_action = close/, 'fw');
});

test('warning: both Sequence and One_Time_Sequences', () => {
  const { warnings } = ok('[d]\nsequence = 1,2\none_time_sequences = /etc/otp\ncommand = x\n');
  oneWarning(warnings, 3, /both Sequence \(line 2\) and One_Time_Sequences \(line 3\)/, 'd');
});

test('warning: byte-order mark', () => {
  const { warnings } = ok('\uFEFF[d]\nsequence = 1,2\ncommand = x\n');
  oneWarning(warnings, 1, /byte-order mark/);
});

// ---------------------------------------------------------------------------
// formatIssue, ConfigError, loadConfig
// ---------------------------------------------------------------------------

test('formatIssue with and without door, and for whole-file issues', () => {
  assert.equal(formatIssue({ severity: 'warning', file: 'k.conf', line: 3, message: 'm' }), 'k.conf:3: warning: m');
  assert.equal(formatIssue({ severity: 'error', file: 'k.conf', line: 3, door: 'x', message: 'm' }), 'k.conf:3: error: [x] m');
  assert.equal(formatIssue({ severity: 'error', file: '/etc/k.conf', line: 0, message: 'gone' }), '/etc/k.conf: error: gone');
});

test('ConfigError carries the issues and formats them one per line', () => {
  const r = parse('[d]\nsequence = x\ntcpflags = sin\n');
  const e = new ConfigError(r.errors);
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'ConfigError');
  assert.equal(e.issues, r.errors);
  assert.equal(e.message, r.errors.map(formatIssue).join('\n'));
  assert.equal(e.message.split('\n').length, 2);
});

test('loadConfig reads a file; unreadable files give a line-0 error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'knockd-config-'));
  try {
    const good = join(dir, 'knockd.conf');
    await writeFile(good, PROJECT_CONF);
    const r = await loadConfig(good);
    assert.deepEqual(r.errors, []);
    assert.equal(r.config?.file, good);
    assert.equal(r.config?.doors.length, 2);

    const missing = join(dir, 'nope.conf');
    const m = await loadConfig(missing);
    assert.equal(m.config, undefined);
    assert.equal(m.errors.length, 1);
    assert.equal(m.errors[0]?.line, 0);
    assert.match(m.errors[0]?.message ?? '', new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*ENOENT`));

    const latin1 = join(dir, 'latin1.conf');
    await writeFile(latin1, Buffer.concat([Buffer.from('[d]\nsequence = 1,2\ncommand = logger caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    const l = await loadConfig(latin1);
    assert.deepEqual(l.errors, []);
    oneWarning(l.warnings, 3, /not valid UTF-8/);
    assert.equal(l.config?.warnings, l.warnings);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadConfig: EACCES (simulated, so it also runs as root) names the path', async (t) => {
  t.mock.method(fsPromises, 'readFile', async () => {
    throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  });
  const r = await loadConfig('/etc/knockd.conf');
  assert.equal(r.config, undefined);
  assert.deepEqual(r.errors, [
    {
      severity: 'error',
      file: '/etc/knockd.conf',
      line: 0,
      message: "cannot read config file /etc/knockd.conf: permission denied (EACCES); run as root or fix the file's permissions",
    },
  ]);
  assert.equal(formatIssue(r.errors[0] as ConfigIssue).startsWith('/etc/knockd.conf: error: cannot read config file /etc/knockd.conf'), true);
});
