/**
 * Checks that span several directives of one door, run once the whole file
 * is read: a door needs a sequence; firewalld_* directives need
 * firewalld_action and exclude shell commands (and become the door's
 * firewalld rules); command lines that are exactly firewall-cmd rich-rule
 * calls become a firewalld door; an SPA door takes none of the knock
 * directives; and a converted rule with no end is warned about.
 */

import { IP_PLACEHOLDER, knockerRule, ruleTemplates, type RuleTemplate } from '../model';
import { COMMAND_KEYS, directiveName } from './directives';
import type { DoorBuilder } from './door-builder';
import { commandDoor } from './firewallcmd';
import type { Report } from './issues';
import { shellSafe } from '../daemon/notify-hook';
import { validateSpaDoor } from './spa';
import type { DoorConfig, FirewalldDoor } from './types';

export function checkDoor(b: DoorBuilder, report: Report): void {
  const d = b.door;
  const name = d.name;
  const L = d.lines;
  const error = (line: number, message: string): void => report.error(line, message, name);
  const warn = (line: number, message: string): void => report.warn(line, message, name);

  if (Object.keys(b.spa).length > 0) {
    checkSpaDoor(b, report);
    return;
  }
  if (L.SEQUENCE === undefined && L.ONE_TIME_SEQUENCES === undefined) {
    error(
      d.line,
      'door has no knock sequence: add "Sequence = port1,port2,..." (or One_Time_Sequences = /path/to/file)',
    );
  }
  if (L.SEQUENCE !== undefined && L.ONE_TIME_SEQUENCES !== undefined) {
    warn(
      Math.max(L.SEQUENCE, L.ONE_TIME_SEQUENCES),
      `both Sequence (line ${L.SEQUENCE}) and One_Time_Sequences (line ${L.ONE_TIME_SEQUENCES}) are given; ` +
        'the one-time sequences file takes the sequence over, so the fixed Sequence is misleading: remove one of them',
    );
  }

  const actionLine = L.FIREWALLD_ACTION;
  if (actionLine !== undefined) checkFirewalldDirectives(b, actionLine, report);
  else {
    for (const k of ['FIREWALLD_ZONE', 'FIREWALLD_SERVICE', 'FIREWALLD_PORT'] as const) {
      const l = L[k];
      if (l !== undefined)
        error(l, `${directiveName(k)} does nothing without "firewalld_action = open" (or close) in the same door`);
    }
    // Command lines that are exactly firewall-cmd --add/--remove-rich-rule become a firewalld door now,
    // so they take the grant path (D-Bus, firewalld-side timeout) instead of a shell per knock.
    const fwd = commandDoor(d);
    if (fwd !== undefined) d.firewalld = fwd;
  }

  // (A door with firewalld_* but no action has already got an error.)
  const doesSomething =
    actionLine !== undefined ||
    L.FIREWALLD_SERVICE !== undefined ||
    L.FIREWALLD_PORT !== undefined ||
    d.oneTimeSequences !== undefined ||
    [d.startCommand, d.startCommand6, d.stopCommand, d.stopCommand6].some((c) => c !== undefined && c !== '');
  for (const k of ['FIREWALLD_SOURCE_PREFIX', 'FIREWALLD_SOURCE_PREFIX6'] as const) {
    const l = L[k];
    if (l !== undefined && d.firewalld === undefined)
      error(l, `${directiveName(k)} needs a firewalld door ("firewalld_action = open" or close)`);
  }
  const notifyLine = L.NOTIFY_COMMAND;
  if (notifyLine !== undefined && d.firewalld === undefined)
    error(
      notifyLine,
      'notify_command runs beside a firewalld or SPA door only: add firewalld_action and firewalld_service (a shell-command door can run its own notification in Start_Command)',
    );
  if (notifyLine !== undefined && shellSafe(name) !== name)
    warn(notifyLine, `door name "${name}" has characters the shell could read: %DOOR% gives "${shellSafe(name)}"`);
  if (!doesSomething) {
    warn(
      d.line,
      'door does nothing but log "OPEN SESAME": add Start_Command (or firewalld_action and firewalld_service)',
    );
  }

  const n = d.sequence.length;
  if (n >= 2 && d.seqTimeout < n - 1) {
    warn(
      L.SEQ_TIMEOUT ?? L.SEQUENCE ?? d.line,
      `Seq_Timeout is ${d.seqTimeout} s for a ${n}-port sequence: a client that waits a second between knocks ` +
        `needs ${n - 1} s and will never get in; raise Seq_Timeout`,
    );
  }
}

/** A door with firewalld_action: what it needs, what it excludes, and its rules. */
function checkFirewalldDirectives(b: DoorBuilder, actionLine: number, report: Report): void {
  const d = b.door;
  const name = d.name;
  const L = d.lines;
  if (L.FIREWALLD_SERVICE === undefined && L.FIREWALLD_PORT === undefined) {
    report.error(
      actionLine,
      'firewalld_action needs firewalld_service and/or firewalld_port: say what to open or close',
      name,
    );
  }
  for (const k of COMMAND_KEYS) {
    const l = L[k];
    if (l !== undefined) {
      report.error(
        l,
        `${directiveName(k)} cannot be combined with firewalld_action (line ${actionLine}) in one door: ` +
          'use either shell commands or firewalld_*, not both',
        name,
      );
    }
  }
  if (b.fw.action === 'close' && d.cmdTimeoutSet) {
    report.warn(L.CMD_TIMEOUT ?? d.line, 'Cmd_Timeout has no effect with firewalld_action = close', name);
  }
  if (b.fw.action === undefined) return;
  const services = b.fw.services ?? [];
  const ports = b.fw.ports ?? [];
  // Cmd_Timeout is the rule's own firewalld timeout; not written, knockd's default (10 s): no door opens for good unasked.
  const timeout = b.fw.action === 'open' ? d.cmdTimeout : 0;
  d.firewalld = {
    action: b.fw.action,
    services,
    ports,
    rules: directiveRules(b.fw.zone, services, ports, timeout),
    from: 'directives',
  };
  if (b.fw.zone !== undefined) d.firewalld.zone = b.fw.zone;
  if (b.fw.action === 'open' && d.cmdTimeoutSet && d.cmdTimeout === 0) {
    report.warn(
      L.CMD_TIMEOUT ?? d.line,
      'Cmd_Timeout = 0: the rule never expires; it stays until a close knock or a firewalld reload after the grant ends. Give it a timeout (firewalld keeps established sessions after the rule goes)',
      name,
    );
  }
}

/** An SPA door (spa_* directives): fwknop's Single Packet Authorization instead of a knock sequence. */
function checkSpaDoor(b: DoorBuilder, report: Report): void {
  const d = b.door;
  const L = d.lines;
  for (const k of [
    'SEQUENCE',
    'ONE_TIME_SEQUENCES',
    'TCPFLAGS',
    'SEQ_TIMEOUT',
    'TARGET',
    'FIREWALLD_ACTION',
    'FIREWALLD_SERVICE',
    'FIREWALLD_PORT',
    'FIREWALLD_SOURCE_PREFIX',
    'FIREWALLD_SOURCE_PREFIX6',
    ...COMMAND_KEYS,
  ] as const) {
    const l = L[k];
    if (l !== undefined) {
      report.error(
        l,
        `${directiveName(k)} has no place in an SPA door (spa_* directives): an SPA door opens spa_open_ports for the address its packet names; use a separate door for knocks`,
        d.name,
      );
    }
  }
  const r = validateSpaDoor({
    name: d.name,
    line: d.line,
    directives: b.spa,
    ...(d.cmdTimeoutSet ? { cmdTimeout: { seconds: d.cmdTimeout, line: L.CMD_TIMEOUT ?? d.line } } : {}),
  });
  for (const e of r.errors) report.error(e.line, e.message, d.name);
  for (const w of r.warnings) report.warn(w.line, w.message, d.name);
  if (r.door) {
    d.spa = r.door;
    if (b.fw.zone !== undefined) d.spaZone = b.fw.zone;
  }
}

/**
 * A converted firewall-cmd door whose rule has no end: no --timeout, no
 * Stop_Command removing it, and no close door removing it either.
 */
export function endlessRuleWarnings(doors: readonly DoorConfig[], report: Report): void {
  const closes = new Set(
    doors.flatMap((d) =>
      d.firewalld?.action === 'close' ? ruleTemplates(d.firewalld).map((r) => `${r.zone ?? ''} ${r.rule}`) : [],
    ),
  );
  for (const d of doors) {
    const f = d.firewalld;
    if (f?.from !== 'commands' || f.action !== 'open') continue;
    if (ruleTemplates(f).some((r) => r.timeout === 0 && !closes.has(`${r.zone ?? ''} ${r.rule}`))) {
      report.warn(
        d.lines.START_COMMAND ?? d.lines.START_COMMAND_6 ?? d.line,
        'firewall-cmd --add-rich-rule with no --timeout, no Stop_Command that removes it and no door that closes it: the rule never expires. ' +
          'Add --timeout=30s, or a Stop_Command with --remove-rich-rule of the same rule',
        d.name,
      );
    }
  }
}

/** The rule templates of a `firewalld_*` door: one per service, then one per port, for each family. */
function directiveRules(
  zone: string | undefined,
  services: string[],
  ports: FirewalldDoor['ports'],
  timeout: number,
): FirewalldDoor['rules'] {
  const what = [
    ...services.map((name) => `service name="${name}"`),
    ...ports.map((p) => `port port="${p.port}" protocol="${p.proto}"`),
  ];
  const z = zone !== undefined ? { zone } : {};
  const family = (f: 4 | 6): RuleTemplate[] =>
    what.map((w) => ({ ...z, rule: knockerRule(f, IP_PLACEHOLDER, w), timeout }));
  return { 4: family(4), 6: family(6) };
}
