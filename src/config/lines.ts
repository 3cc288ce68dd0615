/**
 * The line reader: knockd 0.8's line grammar.
 *  - every line is trimmed of ASCII white space (space, tab, CR, LF, VT, FF);
 *  - an empty line, or one whose first character is `#`, is a comment. Nothing
 *    else is ever a comment: `;`, `#`, `=`, quotes and backslashes inside a
 *    value are kept byte for byte;
 *  - `[name]` starts a section;
 *  - `key = value` is split at the FIRST `=`; key and value are trimmed, the
 *    value otherwise kept as written;
 *  - a line with no `=` is a bare word (only `UseSyslog` may be written so).
 */

import { trimAscii } from './text';

export type Line =
  | { kind: 'comment' }
  | { kind: 'header'; name: string }
  /** Starts with `[` but does not end with `]`. */
  | { kind: 'bad-header' }
  | { kind: 'bare'; text: string }
  /** `= value` with nothing before the `=`. */
  | { kind: 'no-key' }
  | { kind: 'directive'; key: string; value: string };

/** The file's lines, trimmed; `bom` when the text started with a byte-order mark (dropped). */
export function splitLines(input: string): { lines: string[]; bom: boolean } {
  const bom = input.startsWith('\uFEFF');
  const text = bom ? input.slice(1) : input;
  return { lines: text.split('\n').map(trimAscii), bom };
}

/** What one trimmed line is. */
export function readLine(l: string): Line {
  if (l === '' || l.startsWith('#')) return { kind: 'comment' };
  if (l.startsWith('[')) return isHeader(l) ? { kind: 'header', name: headerName(l) } : { kind: 'bad-header' };
  const eq = l.indexOf('=');
  if (eq < 0) return { kind: 'bare', text: l };
  const key = trimAscii(l.slice(0, eq));
  if (key === '') return { kind: 'no-key' };
  return { kind: 'directive', key, value: trimAscii(l.slice(eq + 1)) };
}

/** The names written in `[...]` headers anywhere in the file. */
export function headerNames(lines: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const l of lines) if (isHeader(l)) names.add(headerName(l));
  return names;
}

function isHeader(l: string): boolean {
  return l.length >= 2 && l.startsWith('[') && l.endsWith(']');
}

function headerName(l: string): string {
  return trimAscii(l.slice(1, -1));
}
