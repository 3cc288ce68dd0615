/**
 * knockd.conf: the parser's public face. The grammar follows knockd 0.8's
 * `parseconfig()` (see lines.ts), plus the `firewalld_*` and `spa_*` door
 * directives (see directives.ts).
 *
 * Differences from knockd, all on purpose:
 *  - every problem is collected (knockd stops at the first), each with its
 *    file, line and door, and with a message an admin can act on;
 *  - numbers are checked strictly (knockd uses atoi(): `15s` is 15, `abc` 0);
 *  - directives before any `[section]` header (as printed in many tutorials)
 *    are accepted with a warning instead of being rejected;
 *  - duplicate door names, a flag both required and excluded, and similar
 *    contradictions are errors;
 *  - typographic characters that silently break shell commands are warned about.
 *
 * The modules: lines.ts (line reader), parser.ts (sections and the loop over
 * the directive table), directives.ts (the table), values.ts and the shared
 * grammars sequence.ts, seconds.ts, zone.ts, yesno.ts, text.ts; hints.ts
 * (typography, "did you mean"); door-checks.ts (whole-door checks);
 * overlap.ts and flag-groups.ts (colliding sequences across doors);
 * issues.ts (bounded error and warning lists); read.ts (file bytes).
 */

import { promises as fsp } from 'node:fs';

import { formatIssue, MAX_ERRORS, MAX_WARNINGS, sortIssues } from './issues';
import { MAX_PREFIX_WARNINGS } from './overlap';
import { Parser, type ParseResult } from './parser';
import { decodeUtf8, readErrorMessage } from './read';
import { MAX_TIMEOUT_SECONDS } from './seconds';
import { SEQ_MAX, sequenceText } from './sequence';
import { MAX_QUOTE } from './text';
import type { ConfigIssue } from './types';

export type { ParseResult };
export { formatIssue, MAX_ERRORS, MAX_PREFIX_WARNINGS, MAX_QUOTE, MAX_TIMEOUT_SECONDS, MAX_WARNINGS, SEQ_MAX };
export { sequenceText };

/**
 * Parses the text of a knockd.conf. `file` is only used to label issues.
 * Collects every error and warning; `config` is undefined if there is any error.
 */
export function parseConfigText(text: string, file: string): ParseResult {
  const parser = new Parser(file);
  parser.scan(text);
  return parser.finish();
}

/**
 * Reads and parses a config file. An unreadable file gives one error issue at
 * line 0. Bytes that are not UTF-8 are replaced (with a warning naming the line).
 */
export async function loadConfig(path: string): Promise<ParseResult> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(path);
  } catch (err) {
    const issue: ConfigIssue = { severity: 'error', file: path, line: 0, message: readErrorMessage(path, err) };
    return { errors: [issue], warnings: [] };
  }
  const { text, badLine } = decodeUtf8(buf);
  const result = parseConfigText(text, path);
  if (badLine !== undefined) {
    const w: ConfigIssue = {
      severity: 'warning',
      file: path,
      line: badLine,
      message:
        'this line is not valid UTF-8 (Latin-1 or another legacy encoding?); the bad bytes were replaced by U+FFFD, ' +
        'so a command or path containing them will not be what you wrote. Save the file as UTF-8.',
    };
    result.warnings.push(w);
    sortIssues(result.warnings);
    // config.warnings is the same array object as result.warnings.
  }
  return result;
}
