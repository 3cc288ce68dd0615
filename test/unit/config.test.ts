/**
 * Tests for the knockd.conf parser (src/config/parse.ts).
 */
import { SEED_000, SEED_004 } from '../support/seeds';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsPromises } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  formatIssue,
  loadConfig,
  parseConfigText,
  sequenceText,
  SEQ_MAX,
  MAX_TIMEOUT_SECONDS,
  MAX_ERRORS,
  MAX_WARNINGS,
  MAX_PREFIX_WARNINGS,
  MAX_QUOTE,
} from '../../src/config/parse';
import type { ParseResult } from '../../src/config/parse';
import type { ConfigIssue, DoorConfig, FirewalldDoor } from '../../src/config/types';
import {
  IPPROTO_TCP as TCP,
  IPPROTO_UDP as UDP,
  TH_ACK,
  TH_FIN,
  TH_PSH,
  TH_RST,
  TH_SYN,
  TH_URG,
} from '../../src/decode/types';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** The rule templates a firewalld door makes: one per target, for each family. */
function fwRules(zone: string | undefined, targets: string[], timeout: number): FirewalldDoor['rules'] {
  const z = zone !== undefined ? { zone } : {};
  const f = (n: 4 | 6) =>
    targets.map((t) => ({ ...z, rule: `rule family="ipv${n}" source address="%IP%" ${t} accept`, timeout }));
  return { 4: f(4), 6: f(6) };
}

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
  const e = r.errors[0];
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
  const w = hits[0];
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
      firewalld: {
        action: 'open',
        zone: 'public',
        services: ['ssh'],
        ports: [],
        rules: fwRules('public', ['service name="ssh"'], 3600),
        from: 'directives',
      },
      lines: {
        SEQUENCE: 5,
        SEQ_TIMEOUT: 6,
        TCPFLAGS: 7,
        FIREWALLD_ACTION: 8,
        FIREWALLD_ZONE: 9,
        FIREWALLD_SERVICE: 10,
        CMD_TIMEOUT: 11,
      },
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
      cmdTimeout: 10, // knockd's default; a close door's rules have no timeout
      cmdTimeoutSet: false,
      firewalld: {
        action: 'close',
        zone: 'public',
        services: ['ssh'],
        ports: [],
        rules: fwRules('public', ['service name="ssh"'], 0),
        from: 'directives',
      },
      lines: {
        SEQUENCE: 14,
        SEQ_TIMEOUT: 15,
        TCPFLAGS: 16,
        FIREWALLD_ACTION: 17,
        FIREWALLD_ZONE: 18,
        FIREWALLD_SERVICE: 19,
      },
    },
  ]);
});

// ---------------------------------------------------------------------------
// Seed configs, as printed in two tutorials (no section headers)
// ---------------------------------------------------------------------------

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

const SSH_RULE_T = 'rule family="ipv4" source address="%IP%" service name="ssh" accept';

const RICH = (op: string): string =>
  `/bin/firewall-cmd --zone=public --${op}-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"`;

test('seed 000 (header-less) parses to one door, with header and typographic-dash warnings', () => {
  const { doors, warnings, r } = ok(SEED_000);
  assert.deepEqual(r.config?.options, { logFile: '/var/log/knockd.log', useSyslog: false });
  assert.equal(doors.length, 1);
  const d = doors[0];
  assert.deepEqual(
    { ...d, lines: undefined },
    { ...defaults({ name: 'door1', line: 3, ...SEED_000_DOOR }), lines: undefined },
  );
  assert.deepEqual(d.lines, {
    SEQUENCE: 3,
    SEQ_TIMEOUT: 4,
    START_COMMAND: 5,
    CMD_TIMEOUT: 6,
    TCPFLAGS: 7,
    STOP_COMMAND: 8,
  });

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
  assert.deepEqual(
    { ...doors[0], lines: undefined },
    { ...defaults({ name: 'openSSH', line: 4, ...SEED_000_DOOR }), lines: undefined },
  );
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
      // The firewall-cmd line becomes a firewalld door when the config is loaded.
      firewalld: {
        action: op === 'add' ? 'open' : 'close',
        services: [],
        ports: [],
        rules: {
          4: [{ zone: 'public', rule: SSH_RULE_T, timeout: 0 }],
          6: [{ zone: 'public', rule: SSH_RULE_T, timeout: 0 }],
        },
        from: 'commands',
      },
    });
  assert.deepEqual(doors, [
    expected('door1', 2, [3333, 4444, 5555], 'add'),
    expected('door2', 7, [6666, 7777, 8888], 'remove'),
  ]);
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
  assert.deepEqual(
    doors.map((d) => d.name),
    ['open'],
  );
  assert.equal(warnings.length, 1);
  oneWarning(warnings, 1, /Add a header line "\[options\]" above line 1\./);
});

test('header-less door names skip names used by [sections] later in the file', () => {
  const { doors } = ok('sequence = 1,2\ncommand = a\n[door1]\nsequence = 3,4\ncommand = b\n');
  assert.deepEqual(
    doors.map((d) => d.name),
    ['door2', 'door1'],
  );
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
  const { r } = ok(
    '[options]\nLogFile = /var/log/k.log\nUseSyslog\nPidFile = /run/knockd.pid\nInterface = enp1s0\n' + door(''),
  );
  assert.deepEqual(r.config?.options, {
    logFile: '/var/log/k.log',
    useSyslog: true,
    pidFile: '/run/knockd.pid',
    interface: 'enp1s0',
  });
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
      lines: {
        SEQUENCE: 2,
        SEQ_TIMEOUT: 3,
        TCPFLAGS: 4,
        CMD_TIMEOUT: 5,
        TARGET: 6,
        START_COMMAND: 7,
        START_COMMAND_6: 8,
        STOP_COMMAND: 9,
        STOP_COMMAND_6: 10,
      },
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
      lines: {
        ONE_TIME_SEQUENCES: 12,
        SEQ_TIMEOUT: 13,
        TCPFLAGS: 14,
        TARGET: 15,
        START_COMMAND: 16,
        START_COMMAND_6: 17,
      },
    },
  ]);
});

test('key case variations: Sequence, SEQ_TIMEOUT, tcpflags, sTaRt_CoMmAnD', () => {
  const { doors } = ok('[d]\nSequence = 1,2\nSEQ_TIMEOUT = 9\ntcpflags = SYN,!Ack\nsTaRt_CoMmAnD = go\n');
  const d = doors[0];
  assert.equal(sequenceText(d), '1:tcp,2:tcp');
  assert.equal(d.seqTimeout, 9);
  assert.deepEqual(d.tcpFlags, { set: TH_SYN, clear: TH_ACK });
  assert.equal(d.startCommand, 'go');
});

test('defaults: Seq_Timeout 25, Cmd_Timeout 10, any TCP flags, protocol tcp', () => {
  const d = ok(door('')).doors[0];
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
  const d = ok(`[d]\nsequence = ${ports.join(',')}\nseq_timeout = 60\ncommand = x\n`).doors[0];
  assert.equal(d.sequence.length, 32);
  assert.deepEqual(d.sequence.slice(0, 2), [
    { port: 0, proto: TCP },
    { port: 65535, proto: UDP },
  ]);
  assert.equal(
    sequenceText({
      sequence: [
        { port: 3333, proto: TCP },
        { port: 4444, proto: TCP },
        { port: 5555, proto: UDP },
      ],
    }),
    '3333:tcp,4444:tcp,5555:udp',
  );
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
    rules: fwRules(
      undefined,
      [
        'service name="http"',
        'service name="https"',
        'service name="my-svc.v2+x"',
        'port port="8080" protocol="tcp"',
        'port port="60000-61000" protocol="udp"',
        'port port="9" protocol="sctp"',
        'port port="10-10" protocol="dccp"',
      ],
      10,
    ),
    from: 'directives',
  });
  assert.equal(open.cmdTimeout, 10, "firewalld open door without cmd_timeout: knockd's default 10 s, never no timeout");
  assert.equal(open.cmdTimeoutSet, false);
  assert.deepEqual(close.firewalld, {
    action: 'close',
    zone: 'internal/x-1',
    services: [],
    ports: [{ port: '8080', proto: 'tcp' }],
    rules: fwRules('internal/x-1', ['port port="8080" protocol="tcp"'], 0),
    from: 'directives',
  });
  const r = parseConfigText(
    '[t]\nsequence = 1,2\nfirewalld_action = open\nfirewalld_service = ssh\ncmd_timeout = 0\n',
    'k.conf',
  );
  const timed = r.config!.doors[0];
  assert.equal(timed.cmdTimeout, 0);
  assert.equal(timed.firewalld?.rules[4][0]?.timeout, 0, 'cmd_timeout = 0 is allowed: no timeout');
  oneWarning(r.warnings, 5, /Cmd_Timeout = 0: the rule never expires/, 't');
});

// ---------------------------------------------------------------------------
// Values are kept byte for byte
// ---------------------------------------------------------------------------

test('a command with ; # = quotes and backslashes round-trips byte for byte', () => {
  const cmd = `/bin/sh -c 'logger "a=b; c#d" \\; printf "%s\\n" x' ; echo \\\\ "y=z" # x ; = \\'`;
  const d = ok(`[d]\nsequence = 1,2\nstart_command = ${cmd}\nstop_command=${cmd}   \t\n`).doors[0];
  assert.equal(d.startCommand, cmd);
  assert.equal(d.stopCommand, cmd);
});

test('a trailing comment-like "# x" stays in the value', () => {
  const d = ok("[d]\nsequence = 1,2\ncommand = /bin/sh -c 'logger a; logger b' # x\n").doors[0];
  assert.equal(d.startCommand, "/bin/sh -c 'logger a; logger b' # x");
});

test('only the first = splits key and value', () => {
  const d = ok('[d]\nsequence = 1,2\ncommand==a=b==\n').doors[0];
  assert.equal(d.startCommand, '=a=b==');
});

test('comments: only lines whose first non-blank character is #', () => {
  const { doors } = ok('# top\n  \t# indented comment\n[d]\n#sequence = 9,9\nsequence = 1,2\n\n\t\ncommand = x\n');
  assert.equal(sequenceText(doors[0]), '1:tcp,2:tcp');
});

test('CRLF line endings', () => {
  const { doors, r } = ok(PROJECT_CONF.replace(/\n/g, '\r\n'));
  assert.equal(r.config?.options.logFile, '/var/log/knockd.log');
  assert.deepEqual(doors, ok(PROJECT_CONF).doors);
  const d = ok('[d]\r\nsequence = 1,2\r\ncommand = echo "a b" \r\n').doors[0];
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
  oneError(
    '[options]\nLogfiel = /x\n' + door(''),
    2,
    /unknown option "Logfiel" in \[options\].*did you mean LogFile\?/,
  );
  oneError('[options]\nVerbose = 1\n' + door(''), 2, /unknown option "Verbose"/);
});

test('error: door directive in [options] and option in a door', () => {
  oneError(
    '[options]\nsequence = 1,2\n' + door(''),
    2,
    /"sequence" is a door directive and cannot be used in \[options\]/,
  );
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

test('error: a list value gives one error per line, naming the first bad item', () => {
  const seq = (s: string): string => `[d]\ncommand = x\nsequence = ${s}\n`;
  oneError(
    seq('1,,x,70000'),
    3,
    /^empty item in Sequence "1,,x,70000" \(a stray comma\?\) \(and 2 more bad items\)$/,
    'd',
  );
  oneError(
    seq('x,1'),
    3,
    /^invalid port "x" in Sequence: expected a number 0-65535, optionally followed by :tcp or :udp$/,
    'd',
  );
  const many = Array.from({ length: 40 }, (_, i) => (i === 5 ? 'x' : String(i + 1))).join(',');
  oneError(
    seq(many),
    3,
    /^invalid port "x" in Sequence.*; besides, sequence has 40 ports; knockd allows at most 32$/,
    'd',
  );
  oneError(
    door('tcpflags = syn,!syn,ack,!ack'),
    4,
    /^TCP flag "syn" is both required and excluded \("syn" and "!syn"\): keep one \(and 1 more bad item\)$/,
    'd',
  );
  oneError(door('tcpflags = sin,,!fyn'), 4, /^unknown TCP flag "sin" .* \(and 2 more bad items\)$/, 'd');
  oneError(
    fw('firewalld_action = open\nfirewalld_service = a b,,c d'),
    4,
    /^invalid firewalld service name "a b".*\(and 2 more bad items\)$/,
    'fw',
  );
  oneError(
    fw('firewalld_action = open\nfirewalld_port = 22,0/tcp,,22/icmp'),
    4,
    /^invalid firewalld_port "22" .*\(and 3 more bad items\)$/,
    'fw',
  );
  // 100 000 commas: one error, not 100 002 quoting the whole line (10 GB of text).
  const r = parse(`[d]\ncommand = x\nsequence = ${','.repeat(100_000)}\n`);
  assert.equal(r.errors.length, 1);
  assert.match(
    r.errors[0]?.message ?? '',
    /^empty item in Sequence ",+…\(100000 characters\)" \(a stray comma\?\) \(and 100000 more bad items\); besides, sequence has 100001 ports/,
  );
  assert.ok((r.errors[0]?.message.length ?? 0) < MAX_QUOTE + 200);
});

test(`values quoted in messages are cut after ${MAX_QUOTE} characters`, () => {
  const long = 'x'.repeat(5000);
  const e = oneError(
    door(`target = ${long}`),
    4,
    new RegExp(`^Target "x{${MAX_QUOTE}}…\\(5000 characters\\)" is not an IPv4 or IPv6 address`),
    'd',
  );
  assert.ok(e.message.length < MAX_QUOTE + 150, String(e.message.length));
  oneError(door(`seq_timeout = ${'9'.repeat(5000)}`), 4, /^seq_timeout = 9+…\(5000 characters\) is too long/, 'd');
  oneError(door(`${long}`), 4, /^syntax error: "x+…\(5000 characters\)" is neither/, 'd');
  oneError(`[${long}\n`, 1, /^malformed section header "\[x+…\(5001 characters\)"/);
  // No "did you mean" for keys far longer than any known one (the edit distance would be costly).
  oneError(
    door(`seq_timeout${'x'.repeat(100_000)} = 1`),
    4,
    /^unknown directive "seq_timeoutx+…\(100011 characters\)"$/,
    'd',
  );
  oneError(door(`${'k'.repeat(100_000)} = 1`), 4, /^unknown directive "k+…\(100000 characters\)"$/, 'd');
  // A surrogate pair is not cut in half.
  const emoji = oneError(door(`target = ${'\u{1f600}'.repeat(150)}`), 4, /not an IPv4/, 'd');
  assert.equal(emoji.message.includes('\u{1f600}…'), true);
  assert.equal(/[\ud800-\udbff]…/.test(emoji.message), false);
});

test('white space inside a line is kept, however long; only ASCII white space is trimmed', () => {
  const cmd = `a${' '.repeat(40_000)}b`;
  assert.equal(ok(`[d]\nsequence = 1,2\ncommand = ${cmd}\n`).doors[0].startCommand, cmd);
  const d = ok('[d]\nsequence = 1,2\n \t\v\fcommand\t\v = \v\f x  y \t\r\n').doors[0];
  assert.equal(d.startCommand, 'x  y');
  const nb = ok('[d]\nsequence = 1,2\ncommand = \u00a0x\u00a0\n');
  assert.equal(nb.doors[0].startCommand, '\u00a0x\u00a0');
  assert.equal(ok(`[d]\nsequence = 1,2\ncommand = x${' '.repeat(50_000)}\n`).doors[0].startCommand, 'x');
});

test(`at most ${MAX_ERRORS} errors, then "too many errors" and the scan stops`, () => {
  const text = '[d]\nsequence = 1\ncommand = x\n' + 'frobnicate\n'.repeat(MAX_ERRORS + 500) + '[]\n';
  const r = parse(text);
  assert.equal(r.config, undefined);
  assert.equal(r.errors.length, MAX_ERRORS + 1);
  const last = r.errors[MAX_ERRORS];
  assert.equal(last.line, 4 + MAX_ERRORS);
  assert.match(
    last.message,
    new RegExp(`^too many errors \\(more than ${MAX_ERRORS}\\); stopping at line ${4 + MAX_ERRORS}`),
  );
  assert.deepEqual(
    r.errors.slice(0, -1).map((e) => e.line),
    Array.from({ length: MAX_ERRORS }, (_, i) => 4 + i),
  );
  // Exactly MAX_ERRORS errors: all reported, no "too many".
  const exact = parse('[d]\nsequence = 1\ncommand = x\n' + 'frobnicate\n'.repeat(MAX_ERRORS));
  assert.equal(exact.errors.length, MAX_ERRORS);
  assert.equal(
    exact.errors.some((e) => /too many/.test(e.message)),
    false,
  );
});

test(`at most ${MAX_WARNINGS} warnings (the first by line), then one summary; the config is still accepted`, () => {
  const text = '[d]\nsequence = 1\ncommand = x\n' + 'seq_timeout = 5\n'.repeat(MAX_WARNINGS + 21);
  const { warnings, doors } = ok(text);
  assert.equal(doors.length, 1);
  assert.equal(warnings.length, MAX_WARNINGS + 1);
  assert.deepEqual(
    warnings.slice(0, -1).map((w) => w.line),
    Array.from({ length: MAX_WARNINGS }, (_, i) => 5 + i),
  );
  const last = warnings[MAX_WARNINGS];
  assert.equal(last.line, 5 + MAX_WARNINGS);
  assert.equal(last.message, `too many warnings: 20 more not shown (at most ${MAX_WARNINGS} are reported)`);
});

test('typographic dashes: at most 10 words listed per command, then one summary', () => {
  const cmd = Array.from({ length: 15 }, (_, i) => `\u2013opt${i}`).join(' ');
  const { warnings } = ok(`[d]\nsequence = 1,2\ncommand = ${cmd}\n`);
  assert.equal(warnings.length, 11);
  assert.match(warnings[0]?.message ?? '', /^command: `\u2013opt0` looks like `--opt0`/);
  assert.equal(
    warnings[10]?.message,
    'command: contains 5 more words with a typographic dash (U+2013 or U+2014): retype them with "-"',
  );
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
  assert.equal(ok(door('cmd_timeout = 0')).doors[0].cmdTimeout, 0);
});

test('error: unknown TCP flag, formatted as knockd.conf:line: error: [door] ...', () => {
  const e = oneError(door('tcpflags = syn,sin'), 4, /unknown TCP flag "sin"/, 'd');
  assert.equal(
    formatIssue(e),
    'knockd.conf:4: error: [d] unknown TCP flag "sin" (expected fin, syn, rst, psh, ack, urg, each optionally with !)',
  );
  const r = parse('[openSSH]\nsequence = 1,2\ncommand = x\n\n\n\n\n\n\n\n\ntcpflags = sin\n');
  assert.equal(
    formatIssue(r.errors[0]),
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
  assert.equal(ok(door('target = ::ffff:192.0.2.1')).doors[0].target, '::ffff:192.0.2.1');
});

test('error: One_Time_Sequences without a path', () => {
  oneError('[d]\ncommand = x\none_time_sequences =\n', 3, /One_Time_Sequences needs the path/, 'd');
});

const fw = (body: string): string => `[fw]\nsequence = 1,2\n${body}\n`;

test('error: firewalld_action must be open or close', () => {
  oneError(
    fw('firewalld_action = opne\nfirewalld_service = ssh'),
    3,
    /firewalld_action must be "open" or "close", got "opne"/,
    'fw',
  );
});

test('error: firewalld_zone with spaces, quotes or too long', () => {
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = my zone'),
    5,
    /invalid firewalld_zone "my zone"/,
    'fw',
  );
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = "public"'),
    5,
    /invalid firewalld_zone/,
    'fw',
  );
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = abcdefghijklmnopqr'),
    5,
    /invalid firewalld_zone/,
    'fw',
  );
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone ='),
    5,
    /firewalld_zone is empty/,
    'fw',
  );
});

test('error: firewalld_service names', () => {
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh,my service'),
    4,
    /invalid firewalld service name "my service"/,
    'fw',
  );
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
  oneError(
    fw('firewalld_action = open\nfirewalld_zone = public'),
    3,
    /firewalld_action needs firewalld_service and\/or firewalld_port/,
    'fw',
  );
});

test('error: firewalld_service/port/zone without firewalld_action', () => {
  oneError(
    fw('command = x\nfirewalld_service = ssh'),
    4,
    /firewalld_service does nothing without "firewalld_action = open"/,
    'fw',
  );
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
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\ncommand = /bin/true'),
    5,
    /Start_Command cannot be combined/,
    'fw',
  );
  oneError(
    fw('firewalld_action = open\nfirewalld_service = ssh\nstop_command = /bin/true'),
    5,
    /Stop_Command cannot be combined/,
    'fw',
  );
});

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

test('warning: a directive given twice (last one wins), aliases included', () => {
  const { doors, warnings } = ok('[d]\nsequence = 1,2\nseq_timeout = 5\ncommand = a\nTimeout = 9\nstart_command = b\n');
  const d = doors[0];
  assert.equal(d.seqTimeout, 9);
  assert.equal(d.startCommand, 'b');
  oneWarning(
    warnings,
    5,
    /^Timeout \(alias of Seq_Timeout\) repeats Seq_Timeout from line 3; the last one \(line 5\) wins/,
    'd',
  );
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
  oneWarning(
    warnings,
    5,
    /same knock sequence \(1:tcp,2:udp\) as door \[a\] \(line 2\): one knock triggers both doors/,
    'b',
  );
});

test('no same-sequence warning when TCP flag rules cannot both match', () => {
  const { warnings } = ok(
    '[a]\nsequence = 1,2\ntcpflags = syn\ncommand = x\n[b]\nsequence = 1,2\ntcpflags = !syn\ncommand = y\n',
  );
  assert.deepEqual(warnings, []);
});

test('warning: one sequence a prefix of another', () => {
  const { warnings } = ok('[long]\nsequence = 1,2,3\ncommand = x\n[short]\nsequence = 1,2\ncommand = y\n');
  oneWarning(warnings, 2, /starts with the whole sequence of door \[short\] \(line 5\).*after 2 ports/, 'long');
  assert.equal(warnings.length, 1);
  assert.deepEqual(ok('[a]\nsequence = 1,2\ncommand = x\n[b]\nsequence = 1,3\ncommand = y\n').warnings, []);
});

test('warning: the same sequence in three doors: one warning per door, naming the earlier ones', () => {
  const { warnings } = ok(
    '[a]\nsequence = 1,2\ncommand = x\n[b]\nsequence = 1,2\ncommand = y\n[c]\nsequence = 1,2\ncommand = z\n',
  );
  assert.deepEqual(
    warnings.map((w) => [w.line, w.door, w.message]),
    [
      [5, 'b', 'same knock sequence (1:tcp,2:tcp) as door [a] (line 2): one knock triggers both doors'],
      [
        8,
        'c',
        'same knock sequence (1:tcp,2:tcp) as doors [a] (line 2) and [b] (line 5): one knock triggers all 3 doors',
      ],
    ],
  );
  // Flag rules still keep doors apart: [b] (!syn) cannot be confused with [a] (syn); [c] (any flags) with both.
  const f = ok(
    '[a]\nsequence = 1\ntcpflags = syn\ncommand = x\n[b]\nsequence = 1\ntcpflags = !syn\ncommand = y\n[c]\nsequence = 1\ncommand = z\n',
  );
  assert.deepEqual(
    f.warnings.map((w) => [w.line, w.door, w.message]),
    [[10, 'c', 'same knock sequence (1:tcp) as doors [a] (line 2) and [b] (line 6): one knock triggers all 3 doors']],
  );
});

test('warning: the same sequence in many doors names the first three, then "and N more"', () => {
  const text = Array.from({ length: 6 }, (_, i) => `[d${i}]\nsequence = 7:udp\ncommand = x\n`).join('');
  const { warnings } = ok(text);
  assert.equal(warnings.length, 5);
  assert.equal(
    warnings[4]?.message,
    'same knock sequence (7:udp) as doors [d0] (line 2), [d1] (line 5), [d2] (line 8) and 2 more: one knock triggers all 6 doors',
  );
  assert.equal(warnings[4]?.door, 'd5');
  // 2 000 header-less doors with one sequence (a pairwise check gave 2 million warnings).
  const many = parse('sequence = 1\n'.repeat(2000));
  assert.ok(many.config);
  assert.equal(many.config.doors.length, 2000);
  assert.equal(many.warnings.length, MAX_WARNINGS + 1);
});

test('warning: prefix and same-sequence warnings on one line come in the order of the other door', () => {
  const w1 = ok(
    '[s]\nsequence = 1\ncommand = x\n[a]\nsequence = 1,2\ncommand = x\n[l]\nsequence = 1,2\ncommand = x\n',
  ).warnings;
  assert.deepEqual(
    w1.filter((w) => w.door === 'l').map((w) => w.message.slice(0, 40)),
    ['the sequence starts with the whole seque', 'same knock sequence (1:tcp,2:tcp) as doo'],
  );
  const w2 = ok(
    '[a]\nsequence = 1,2\ncommand = x\n[s]\nsequence = 1\ncommand = x\n[l]\nsequence = 1,2\ncommand = x\n',
  ).warnings;
  assert.deepEqual(
    w2.filter((w) => w.door === 'l').map((w) => w.message.slice(0, 40)),
    ['same knock sequence (1:tcp,2:tcp) as doo', 'the sequence starts with the whole seque'],
  );
  // Several prefixes of one sequence.
  const w3 = ok(
    '[abc]\nsequence = 1,2,3\ncommand = x\n[ab]\nsequence = 1,2\ncommand = x\n[a]\nsequence = 1\ncommand = x\n',
  ).warnings;
  assert.deepEqual(
    w3.map((w) => [w.line, w.door, w.message]),
    [
      [
        2,
        'abc',
        'the sequence starts with the whole sequence of door [ab] (line 5): knocking it also triggers [ab] after 2 ports',
      ],
      [
        2,
        'abc',
        'the sequence starts with the whole sequence of door [a] (line 8): knocking it also triggers [a] after 1 ports',
      ],
      [
        5,
        'ab',
        'the sequence starts with the whole sequence of door [a] (line 8): knocking it also triggers [a] after 1 ports',
      ],
    ],
  );
});

test(`warning: at most ${MAX_PREFIX_WARNINGS} prefix warnings, then one summary`, () => {
  const n = MAX_PREFIX_WARNINGS + 50;
  const text =
    '[short]\nsequence = 1\ncommand = x\n' +
    Array.from({ length: n }, (_, i) => `[l${i}]\nsequence = 1,${i + 2}\ncommand = x\n`).join('');
  const { warnings } = ok(text);
  const prefix = warnings.filter((w) => /starts with the whole sequence of door \[short\]/.test(w.message));
  assert.equal(prefix.length, MAX_PREFIX_WARNINGS);
  assert.deepEqual(
    prefix.map((w) => w.door),
    Array.from({ length: MAX_PREFIX_WARNINGS }, (_, i) => `l${i}`),
  );
  const summary = oneWarning(
    warnings,
    5 + 3 * MAX_PREFIX_WARNINGS,
    /^\.\.\. and 50 more cases of a door whose sequence starts with another door's whole sequence/,
  );
  assert.equal(warnings[warnings.length - 1], summary);
});

/**
 * The cross-door checks as a plain pairwise comparison (what the parser did
 * before it indexed sequences), with the same message and cap rules.
 */
function pairwiseCrossDoorWarnings(doors: DoorConfig[]): [number, string | undefined, string][] {
  const seqText = (d: DoorConfig): string => sequenceText(d);
  const compatible = (short: DoorConfig, long: DoorConfig): boolean =>
    !short.sequence.every((p) => p.proto === TCP) ||
    ((short.tcpFlags.set & long.tcpFlags.clear) | (long.tcpFlags.set & short.tcpFlags.clear)) === 0;
  const isPrefix = (short: DoorConfig, long: DoorConfig): boolean =>
    short.sequence.every((p, i) => long.sequence[i]?.port === p.port && long.sequence[i]?.proto === p.proto);
  const out: [number, string | undefined, string][] = [];
  let prefixCount = 0;
  let omitted = 0;
  let omittedLine = 0;
  doors.forEach((l, j) => {
    const line = l.lines.SEQUENCE ?? l.line;
    const items: { at: number; message: string }[] = [];
    const earlier = doors.filter((o, i) => i < j && seqText(o) === seqText(l) && compatible(o, l));
    if (earlier.length > 0) {
      const named = earlier.slice(0, 3).map((o) => `[${o.name}] (line ${o.lines.SEQUENCE ?? o.line})`);
      const more = earlier.length - named.length;
      const message =
        earlier.length === 1
          ? `same knock sequence (${seqText(l)}) as door ${named[0]}: one knock triggers both doors`
          : `same knock sequence (${seqText(l)}) as doors ${more > 0 ? `${named.join(', ')} and ${more} more` : `${named.slice(0, -1).join(', ')} and ${named[named.length - 1]}`}: one knock triggers all ${earlier.length + 1} doors`;
      items.push({ at: doors.indexOf(earlier[0]), message });
    }
    doors.forEach((s, i) => {
      if (s.sequence.length >= l.sequence.length || !isPrefix(s, l) || !compatible(s, l)) return;
      if (prefixCount >= MAX_PREFIX_WARNINGS) {
        if (omitted++ === 0) omittedLine = line;
        return;
      }
      prefixCount++;
      items.push({
        at: i,
        message: `the sequence starts with the whole sequence of door [${s.name}] (line ${s.lines.SEQUENCE ?? s.line}): knocking it also triggers [${s.name}] after ${s.sequence.length} ports`,
      });
    });
    items.sort((x, y) => x.at - y.at);
    for (const it of items) out.push([line, l.name, it.message]);
  });
  if (omitted > 0) {
    out.push([
      omittedLine,
      undefined,
      `... and ${omitted} more cases of a door whose sequence starts with another door's whole sequence (only the first ${MAX_PREFIX_WARNINGS} are listed)`,
    ]);
  }
  return out.sort((x, y) => x[0] - y[0]);
}

test('cross-door warnings equal a pairwise comparison (random configs, all 729 flag rules)', () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const FLAGS = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg'];
  let compared = 0;
  for (let round = 0; round < 60; round++) {
    const big = round % 10 === 9; // a few configs with hundreds of doors (and the prefix cap)
    const n = big ? 300 + rand(200) : 1 + rand(25);
    let text = '';
    for (let d = 0; d < n; d++) {
      const len = 1 + rand(big ? 3 : 4);
      const seq = Array.from({ length: len }, () => `${1 + rand(2)}${rand(6) === 0 ? ':udp' : ''}`).join(',');
      text += `[d${d}]\nsequence = ${seq}\nseq_timeout = 60\ncommand = x\n`;
      if (rand(3) > 0) {
        // Any of the 3^6 rules: each flag required, excluded or ignored.
        const fl = FLAGS.flatMap((f) => [[], [f], [`!${f}`]][rand(3)]);
        if (fl.length > 0) text += `tcpflags = ${fl.join(',')}\n`;
      }
      if (rand(20) === 0) text += 'one_time_sequences = /etc/otp\n';
    }
    const r = parse(text);
    assert.ok(r.config, `round ${round}: ${r.errors.map(formatIssue).join('\n')}`);
    const doors = r.config.doors;
    const cross = r.warnings
      .filter((w) => /^(same knock sequence|the sequence starts with|\.\.\. and \d+ more cases)/.test(w.message))
      .map((w): [number, string | undefined, string] => [w.line, w.door, w.message]);
    const expected = pairwiseCrossDoorWarnings(
      doors.filter((d) => d.sequence.length > 0 && d.oneTimeSequences === undefined),
    );
    if (r.warnings.length <= MAX_WARNINGS) assert.deepEqual(cross, expected, `round ${round}:\n${text.slice(0, 2000)}`);
    else assert.deepEqual(cross, expected.slice(0, cross.length), `round ${round} (warnings capped)`);
    compared += cross.length;
  }
  assert.ok(compared > 500, `only ${compared} warnings compared`);
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
  assert.equal(
    formatIssue({ severity: 'error', file: 'k.conf', line: 3, door: 'x', message: 'm' }),
    'k.conf:3: error: [x] m',
  );
  assert.equal(
    formatIssue({ severity: 'error', file: '/etc/k.conf', line: 0, message: 'gone' }),
    '/etc/k.conf: error: gone',
  );
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
    await writeFile(
      latin1,
      Buffer.concat([Buffer.from('[d]\nsequence = 1,2\ncommand = logger caf'), Buffer.from([0xe9]), Buffer.from('\n')]),
    );
    const l = await loadConfig(latin1);
    assert.deepEqual(l.errors, []);
    oneWarning(l.warnings, 3, /not valid UTF-8/);
    assert.equal(l.config?.warnings, l.warnings);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadConfig: EACCES (simulated, so it also runs as root) names the path', async (t) => {
  t.mock.method(fsPromises, 'readFile', () =>
    Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })),
  );
  const r = await loadConfig('/etc/knockd.conf');
  assert.equal(r.config, undefined);
  assert.deepEqual(r.errors, [
    {
      severity: 'error',
      file: '/etc/knockd.conf',
      line: 0,
      message:
        "cannot read config file /etc/knockd.conf: permission denied (EACCES); run as root or fix the file's permissions",
    },
  ]);
  assert.equal(
    formatIssue(r.errors[0]).startsWith('/etc/knockd.conf: error: cannot read config file /etc/knockd.conf'),
    true,
  );
});
