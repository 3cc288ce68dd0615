import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  normalizeRichRule,
  parseFirewallTimeout,
  recognizeFirewallCmd,
  shellWords,
} from '../../src/config/firewallcmd';

/** The two Command lines of the CentOS 7 tutorial (seeds/004), verbatim. */
const SEED_ADD =
  '/bin/firewall-cmd --zone=public --add-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"';
const SEED_REMOVE =
  '/bin/firewall-cmd --zone=public --remove-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"';
const SSH_RULE = 'rule family="ipv4" source address="%IP%" service name="ssh" accept';

// ------------------------------------------------------------ firewalld itself

/** firewalld's Python package lives in the system interpreter (firewall-cmd's shebang), not in a pyenv. */
const PYTHON = '/usr/bin/python3';

const PY_SCRIPT = `
import json, sys
from firewall.core.rich import Rich_Rule
out = []
for r in json.load(sys.stdin):
    try:
        out.append({"ok": True, "str": str(Rich_Rule(rule_str=r))})
    except Exception as e:
        out.append({"ok": False, "err": str(e)})
sys.stdout.write(json.dumps(out))
`;

type PyResult = { ok: true; str: string } | { ok: false; err: string };

/** Ask firewalld's own rich-rule parser. Fails (never skips) if it is not installed: firewalld is a test dependency. */
function firewalld(rules: string[]): PyResult[] {
  const r = spawnSync(PYTHON, ['-c', PY_SCRIPT], { input: JSON.stringify(rules), encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    assert.fail(
      `firewalld's Python module is required for this test (${PYTHON}, firewall.core.rich): ${r.error?.message ?? r.stderr}`,
    );
  }
  return JSON.parse(r.stdout) as PyResult[];
}

/** firewalld validates addresses, so give it a real one where we keep the placeholder. */
function withAddress(rule: string): string {
  return rule.split('%IP%').join(rule.includes('ipv6') ? '2001:db8::7' : '192.0.2.7');
}

/** Rules we normalise: each must print exactly as firewalld prints it. */
const ACCEPTED = [
  'rule family=ipv4 source address=%IP% service name=ssh accept',
  'rule family="ipv4" source address="%IP%" service name="ssh" accept',
  "rule family='ipv4' source address='%IP%' service name='ssh' accept",
  'rule service name=ftp family=ipv4 source address=%IP% accept',
  'rule family=ipv6 source address=%IP% port port=22 protocol=tcp accept',
  'rule family=ipv4 source address=%IP% port protocol=udp port=60000-61000 accept',
  'rule family=ipv4 source address=%IP% protocol value=gre accept',
  'rule family=ipv4 source address=%IP% service name=ssh log prefix="knockd ssh" level=info accept',
  'rule family=ipv4 source address=%IP% service name=ssh log level=notice limit value=3/minute prefix=ssh accept',
  'rule family=ipv4 source address=%IP% log accept',
  'rule family=ipv4 source address=%IP% reject type=icmp-admin-prohibited',
  'rule family=ipv6 source address=%IP% service name=ssh reject type=icmp6-adm-prohibited',
  'rule family=ipv4 source address=%IP% service name=ssh reject limit value=5/s',
  'rule family=ipv4 source address=%IP% service name=ssh accept limit value=1/m',
  'rule family=ipv4 source address=%IP% service name=ssh drop limit value=10/day',
  'rule family=ipv4 source address=%IP% drop',
  'rule family=ipv4 source address=%IP% service name=ssh audit limit value=2/hour accept',
  'rule family=ipv4 source address=%IP% destination address=192.168.1.10/32 port port=443 protocol=tcp accept',
  'rule family=ipv4 source address=%IP% destination address=192.168.1.0/255.255.255.0 service name=https accept',
  'rule family=ipv4 source address=%IP% forward-port port=2222 protocol=tcp to-port=22 to-addr=10.0.0.5',
  'rule family=ipv4 source address=%IP% masquerade',
  'rule family=ipv4 source address=%IP% icmp-block name=echo-request',
  'rule family=ipv4 source address=%IP% icmp-type name=echo-request accept',
  'rule family=ipv4 source address=%IP% source-port port=53 protocol=udp accept',
  'rule priority=-10 family=ipv4 source address=%IP% service name=ssh accept',
  'rule family=ipv4 priority=05 source address=%IP% service name=ssh accept',
  'rule priority=0 family=ipv4 source address=%IP% service name=ssh accept',
  'rule family=ipv4 source address=%IP% port port=80 protocol=tcp mark set=0x10/0xff',
  'rule family=ipv4 source address=%IP% mark set=7',
  '  rule   family=ipv4   source address=%IP%   service name=ssh   accept  ',
];

/** Rules firewalld refuses: we must refuse them too (the shell then shows firewall-cmd's error). */
const REFUSED_BY_BOTH = [
  'rule source address=%IP% service name=ssh accept', // address needs a family
  'rule family=ipv5 source address=%IP% service name=ssh accept',
  'rule family=ipv4 source address=%IP% service name=ssh', // no action
  'rule family=ipv4 source address=%IP% service name=ssh accept drop',
  'rule family=ipv4 source address=%IP% service name=ssh port port=22 protocol=tcp accept',
  'rule family=ipv4 source address=%IP% source address=10.0.0.1 accept',
  'rule family=ipv4 source address=%IP% service name=ssh accept limit value=1/d',
  'rule family=ipv4 source address=%IP% service name=ssh accept limit value=0/m',
  'rule family=ipv4 source address=%IP% service name=ssh accept limit value=5',
  'rule family=ipv4 source address=%IP% reject type=icmp6-adm-prohibited',
  'rule source ipset=x reject type=tcp-reset',
  'rule family=ipv4 source address=%IP% port port=70000 protocol=tcp accept',
  'rule family=ipv4 source address=%IP% port port=22 protocol=icmp accept',
  'rule family=ipv4 source address=%IP% port port=22 accept',
  'rule family=ipv4 source address=%IP% service name=ssh log level=loud accept',
  'rule family=ipv4 source address=%IP% masquerade accept',
  'rule family=ipv4 source address=%IP% icmp-block name=echo-request drop',
  'rule family=ipv4 source address=%IP% service name=ssh audit',
  'rule family=ipv4 source address=%IP% service name=ssh audit mark set=1',
  'rule family=ipv4 source address=%IP% forward-port port=22 protocol=tcp',
  'rule source address=%IP% forward-port port=22 protocol=tcp to-port=2222',
  'rule family=ipv4 source address=%IP% bogus accept',
  'rule family=ipv4 source address=a=b accept',
  'rule family=ipv4 source address=%IP% service name= accept',
  'rule family=ipv4 source address=%IP% service accept',
  'rule family=ipv4 source address=300.1.1.1 service name=ssh accept',
  'rule family=ipv4 source address=10.0.0.0/33 service name=ssh accept',
  'rule family=ipv6 source address=%IP% protocol value=nosuchproto accept',
  'rule family=ipv4 source mac=aa:bb:cc:dd:ee service name=ssh accept',
  'rule family=ipv4 source address=%IP% mark set=0x1ffffffff',
  'rule family=ipv4 source address=%IP% log prefix=' + 'x'.repeat(128) + ' accept',
  'rule priority=40000 family=ipv4 source address=%IP% accept',
  'rule family=ipv4',
  'rule',
  'service name=ssh accept',
  'rule family=ipv4 source address=%IP% service name=ssh accept "',
  'rule family=ipv4 source address=%IP% service name=ssh\taccept', // firewalld deletes the tab: "sshaccept", no action
];

/**
 * Rules firewalld accepts but we deliberately do not (the daemon then runs
 * firewall-cmd through the shell, which works as before). Listed so that a
 * change in either side shows up.
 */
const CONSERVATIVE = [
  'rule family=ipv4 source address=%IP% limit value=1/m accept', // firewalld quietly moves the limit onto the action
  'rule family=ipv4 source address=%IP% service name=ssh nflog accept', // nflog: not supported here
  'rule family=ipv4 source address=%IP% port port=ssh protocol=tcp accept', // named port: /etc/services lookup
  'rule family=ipv4 source address=%IP%/24 service name=ssh accept', // placeholder must be a whole value
  'rule family=ipv4 source address=%IP% service name=ssh log prefix=knock-%IP% accept', // placeholder outside an address
  'rule family=ipv4 source address=%IP% port port=22 port=23 protocol=tcp accept', // repeated attribute (firewalld: last wins)
  'rule priority=+5 family=ipv4 source address=%IP% accept', // exotic integer syntax
  'rule family=ipv4 family=ipv4 source address=%IP% accept', // repeated family
  'rule family=ipv4 source address=%IP% service name=ssh log prefix="a\\"b" accept', // backslash in the rule
  'rule protocol value=47 accept', // no door makes it: not the knocker's own source address
  'rule family=ipv4 source not address=10.0.0.0/8 service name=http drop', // no door makes it: not the knocker's own source address
  'rule family=ipv4 source NOT address=%IP% service name=http reject', // no door makes it: not the knocker's own source address
  'rule family=ipv6 destination not address=fd00::/8 service name=ssh accept', // no door makes it: not the knocker's own source address
  'rule family=ipv4 forward-port to-addr=%IP% port=80 protocol=tcp', // no door makes it: not the knocker's own source address
  'rule family=ipv4 source mac=aa:bb:cc:dd:ee:0f service name=ssh accept', // no door makes it: not the knocker's own source address
  'rule family=ipv4 source ipset=knocked service name=ssh accept', // no door makes it: not the knocker's own source address
  'rule priority=32767 service name=ssh log prefix=x', // no door makes it: not the knocker's own source address
];

test("rich rules: normalised text equals firewalld's own str(Rich_Rule(...))", () => {
  const truth = firewalld(ACCEPTED.map(withAddress));
  ACCEPTED.forEach((rule, i) => {
    const ours = normalizeRichRule(rule);
    const theirs = truth[i];
    assert.ok(theirs.ok, `firewalld refuses ${rule}: ${theirs.ok ? '' : theirs.err}`);
    assert.notEqual(ours, undefined, `we refuse ${rule}`);
    assert.equal(withAddress(ours!), theirs.str, rule);
  });
  assert.ok(ACCEPTED.length >= 15);
});

test('rich rules: the output is a fixed point (normalising canonical text changes nothing)', () => {
  for (const rule of ACCEPTED) {
    const once = normalizeRichRule(rule)!;
    assert.equal(normalizeRichRule(once), once, rule);
  }
});

test('rich rules: what firewalld refuses, we refuse', () => {
  const truth = firewalld(REFUSED_BY_BOTH.map(withAddress));
  REFUSED_BY_BOTH.forEach((rule, i) => {
    assert.equal(truth[i].ok, false, `firewalld accepts ${rule}: the test case is wrong`);
    assert.equal(normalizeRichRule(rule), undefined, rule);
  });
});

test('rich rules: some rules firewalld accepts are left to the shell on purpose', () => {
  const truth = firewalld(CONSERVATIVE.map(withAddress));
  CONSERVATIVE.forEach((rule, i) => {
    assert.equal(truth[i].ok, true, `firewalld refuses ${rule}: move it to REFUSED_BY_BOTH`);
    assert.equal(normalizeRichRule(rule), undefined, rule);
  });
});

test('rich rules: a few outputs spelled out', () => {
  assert.equal(normalizeRichRule('rule family=ipv4 source address=%IP% service name=ssh accept'), SSH_RULE);
  assert.equal(
    normalizeRichRule('rule family=ipv4 source address=%IP% service name=ssh log level=info limit value=1/minute drop'),
    'rule family="ipv4" source address="%IP%" service name="ssh" log level="info" limit value="1/m" drop',
  );
  assert.equal(
    normalizeRichRule('rule family=ipv4 source address=%IP% mark set=0x1'),
    'rule family="ipv4" source address="%IP%" mark set=0x1',
  );
});

// ------------------------------------------------------------ recognizeFirewallCmd

test('seed command lines: add and remove with the canonical rule, zone public', () => {
  assert.deepEqual(recognizeFirewallCmd(SEED_ADD), { kind: 'add', zone: 'public', rule: SSH_RULE, timeout: 0 });
  assert.deepEqual(recognizeFirewallCmd(SEED_REMOVE), { kind: 'remove', zone: 'public', rule: SSH_RULE });
});

test('the seed splits like /bin/sh splits it: one word, inner quotes gone', () => {
  assert.deepEqual(shellWords(SEED_ADD), [
    '/bin/firewall-cmd',
    '--zone=public',
    '--add-rich-rule=rule family=ipv4 source address=%IP% service name=ssh accept',
  ]);
});

test('spellings of the same invocation', () => {
  const add = { kind: 'add', zone: 'public', rule: SSH_RULE, timeout: 0 };
  for (const cmd of [
    `firewall-cmd --zone=public --add-rich-rule='${SSH_RULE}'`,
    `/usr/bin/firewall-cmd --add-rich-rule='${SSH_RULE}' --zone=public`,
    `firewall-cmd --zone public --add-rich-rule '${SSH_RULE}'`,
    `firewall-cmd --zone="public" "--add-rich-rule=rule family=ipv4 source address=%IP% service name=ssh accept"`,
    'firewall-cmd --zone=public --add-rich-rule=rule\\ family=ipv4\\ source\\ address=%IP%\\ service\\ name=ssh\\ accept',
    `\tfirewall-cmd   --zone=public\t--add-rich-rule="rule family=\\"ipv4\\" source address=\\"%IP%\\" service name=\\"ssh\\" accept"  `,
  ]) {
    assert.deepEqual(recognizeFirewallCmd(cmd), add, cmd);
  }
  // No zone: firewalld's default zone; the property is absent.
  assert.deepEqual(recognizeFirewallCmd(`firewall-cmd --add-rich-rule='${SSH_RULE}'`), {
    kind: 'add',
    rule: SSH_RULE,
    timeout: 0,
  });
  assert.deepEqual(recognizeFirewallCmd(`firewall-cmd --remove-rich-rule '${SSH_RULE}'`), {
    kind: 'remove',
    rule: SSH_RULE,
  });
});

test('timeouts: seconds, s, m, h like firewall-cmd', () => {
  const cases: [string, number][] = [
    ['30', 30],
    ['30s', 30],
    ['30S', 30],
    ['5m', 300],
    ['1h', 3600],
    ['2H', 7200],
    ['0', 0],
    ['7', 7],
    ['0m', 0],
  ];
  for (const [t, s] of cases) {
    assert.equal(parseFirewallTimeout(t), s, t);
    const r = recognizeFirewallCmd(`firewall-cmd --zone=public --timeout=${t} --add-rich-rule='${SSH_RULE}'`);
    assert.deepEqual(r, { kind: 'add', zone: 'public', rule: SSH_RULE, timeout: s }, t);
  }
  assert.equal(recognizeFirewallCmd(`firewall-cmd --add-rich-rule='${SSH_RULE}' --timeout 90`)?.kind, 'add');
  for (const t of ['', 'x', 'm', '5d', '1.5m', '-5', '5 m', '99999999999']) {
    assert.equal(parseFirewallTimeout(t), undefined, t);
    assert.equal(recognizeFirewallCmd(`firewall-cmd --timeout='${t}' --add-rich-rule='${SSH_RULE}'`), undefined, t);
  }
});

test('rejected: anything beyond one plain firewall-cmd invocation', () => {
  const r = `'${SSH_RULE}'`;
  const cases = [
    `firewall-cmd --permanent --add-rich-rule=${r}`,
    `firewall-cmd --add-rich-rule=${r}; firewall-cmd --reload`,
    `firewall-cmd --add-rich-rule=${r} && echo ok`,
    `firewall-cmd --add-rich-rule=${r} || true`,
    `firewall-cmd --add-rich-rule=${r} | logger`,
    `firewall-cmd --add-rich-rule=${r} > /dev/null`,
    `firewall-cmd --add-rich-rule=${r} 2>&1`,
    `firewall-cmd --add-rich-rule=${r} < /dev/null`,
    `firewall-cmd --add-rich-rule=${r} &`,
    `firewall-cmd --zone=\`cat /etc/zone\` --add-rich-rule=${r}`,
    `firewall-cmd --zone=$(cat /etc/zone) --add-rich-rule=${r}`,
    `firewall-cmd --zone=$ZONE --add-rich-rule=${r}`,
    `firewall-cmd --zone="$ZONE" --add-rich-rule=${r}`,
    `firewall-cmd --zone="\`id\`" --add-rich-rule=${r}`,
    `(firewall-cmd --add-rich-rule=${r})`,
    `{ firewall-cmd --add-rich-rule=${r}; }`,
    `sudo firewall-cmd --add-rich-rule=${r}`,
    `exec firewall-cmd --add-rich-rule=${r}`,
    `LANG=C firewall-cmd --add-rich-rule=${r}`,
    `/sbin/firewall-cmd --add-rich-rule=${r}`,
    `firewall-cmd.sh --add-rich-rule=${r}`,
    `firewall-cmd -q --add-rich-rule=${r}`,
    `firewall-cmd --quiet --add-rich-rule=${r}`,
    `firewall-cmd --add-service=ssh`,
    `firewall-cmd --add-rich-rule=${r} --add-service=ssh`,
    `firewall-cmd --add-rich-rule=${r} --add-rich-rule=${r}`,
    `firewall-cmd --add-rich-rule=${r} --remove-rich-rule=${r}`,
    `firewall-cmd --zone=public`,
    `firewall-cmd`,
    `firewall-cmd --add-rich=${r}`, // argparse abbreviation
    `firewall-cmd --zo=public --add-rich-rule=${r}`,
    `firewall-cmd --zone=a --zone=b --add-rich-rule=${r}`,
    `firewall-cmd --zone --add-rich-rule=${r}`,
    `firewall-cmd --add-rich-rule`,
    `firewall-cmd --zone= --add-rich-rule=${r}`,
    `firewall-cmd --zone=%IP% --add-rich-rule=${r}`,
    `firewall-cmd --zone='pub lic' --add-rich-rule=${r}`,
    `firewall-cmd --remove-rich-rule=${r} --timeout=10`,
    `firewall-cmd --add-rich-rule=${r} extra`,
    `firewall-cmd --add-rich-rule=${r} -- `,
    `firewall-cmd --add-rich-rule=${r} # comment`,
    `firewall-cmd --add-rich-rule=${r} *`,
    `firewall-cmd --add-rich-rule=${r} ?`,
    `firewall-cmd --add-rich-rule=${r} [ab]`,
    `firewall-cmd --add-rich-rule=${r} ~`,
    `firewall-cmd --add-rich-rule=${r} !`,
    `firewall-cmd --add-rich-rule=${r}\nreboot`,
    `firewall-cmd --add-rich-rule='${SSH_RULE}`, // unterminated
    `firewall-cmd --add-rich-rule="${SSH_RULE}`,
    `firewall-cmd --add-rich-rule=${r} \\`,
    `firewall-cmd --add-rich-rule='rule family=ipv4 source address=%IP% service name=%IP% accept'`,
    `firewall-cmd --add-rich-rule='rule family=ipv4 source address=%IP% service name=ssh nflog accept'`,
    `firewall-cmd --add-rich-rule='rule source address=%IP% service name=ssh accept'`,
    `firewall-cmd --add-rich-rule=${r} --timeout=5d`,
    `firewall-cmd --add-rich-rule=${r}\u00a0`,
  ];
  for (const cmd of cases) assert.equal(recognizeFirewallCmd(cmd), undefined, cmd);
});

test('shellWords agrees with /bin/sh on every command it accepts', () => {
  const cases = [
    SEED_ADD,
    SEED_REMOVE,
    `firewall-cmd --add-rich-rule='${SSH_RULE}'`,
    `firewall-cmd "a\\"b" "a\\\\b" "a\\xb" "a\\$b" "a\\\`b"`,
    `firewall-cmd 'single \\ "kept"' x'y'"z"w`,
    'firewall-cmd a\\ b c\\;d \\$e \\\\f',
    `firewall-cmd '' "" x`,
    'firewall-cmd\t--zone=public\t\tx',
    'firewall-cmd a=b %IP% 1.2.3.4:5 -_./,+@',
    `firewall-cmd "semi;colon" 'amp&' "pipe|" "<>" "(x)" "*?[]{}~#!"`,
  ];
  for (const cmd of cases) {
    const ours = shellWords(cmd);
    assert.ok(ours, cmd);
    // Let the shell print the words of the same text, NUL-terminated.
    const sh = spawnSync(
      '/bin/sh',
      ['-c', `printf '%s\\0' ${cmd.replace(/^\s*firewall-cmd|^\/bin\/firewall-cmd/, '')}`],
      { encoding: 'utf8' },
    );
    assert.equal(sh.status, 0, sh.stderr);
    const theirs = sh.stdout.split('\0').slice(0, -1);
    assert.deepEqual(ours.slice(1), theirs, cmd);
  }
});

test('shellWords refuses shell syntax and non-ASCII', () => {
  for (const s of [
    'a;b',
    'a&b',
    'a|b',
    'a>b',
    'a<b',
    'a(b',
    'a)b',
    '$x',
    '`x`',
    '"$x"',
    '"`x`"',
    'a*',
    'a?',
    '[a]',
    '{a,b}',
    '~',
    '#x',
    '!x',
    'a\nb',
    'é',
    "'x",
    '"x',
    'x\\',
  ]) {
    assert.equal(shellWords(s), undefined, JSON.stringify(s));
  }
  assert.deepEqual(shellWords(''), []);
  assert.deepEqual(shellWords('  '), []);
});
