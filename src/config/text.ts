/**
 * Text helpers shared by the config grammars: knockd's ASCII trim, and the
 * one way a value is quoted in a message (clip).
 */

/** Most characters of a value, key or line quoted in a message (longer ones end with "…"). */
export const MAX_QUOTE = 200;

/** knockd's trim(): ASCII white space only (a non-breaking space is kept, and warned about in commands). */
export function trimAscii(s: string): string {
  // Index loops, not a regex: /[ \t...]+$/ is quadratic on a long run of
  // white space that is not at the end (each start position rescans the run).
  let start = 0;
  let end = s.length;
  while (start < end && isAsciiSpace(s.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** Space, \t, \n, \v, \f, \r: C's isspace() in the C locale. */
function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * `s` for quoting in a message: at most MAX_QUOTE characters, then "…" and
 * the total length, so that one long line cannot make huge messages.
 */
export function clip(s: string): string {
  if (s.length <= MAX_QUOTE) return s;
  let cut = MAX_QUOTE;
  // Do not split a surrogate pair.
  const c = s.charCodeAt(cut - 1);
  if (c >= 0xd800 && c <= 0xdbff) cut -= 1;
  return `${s.slice(0, cut)}…(${s.length} characters)`;
}

/** `U+2013` for a message naming a character. */
export function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Collects the problems of one list value (Sequence, TCPFlags, ...) and
 * reports at most one: the first, followed by "(and N more bad items)". A
 * hostile line such as `Sequence = ,,,,...` thus gives one error, not one per
 * comma.
 */
export class ListProblems {
  private first: string | undefined;
  private more = 0;

  add(message: string): void {
    if (this.first === undefined) this.first = message;
    else this.more += 1;
  }

  get count(): number {
    return this.first === undefined ? 0 : this.more + 1;
  }

  /** The one message (or none), with `suffix` appended when there is one. */
  errors(suffix = ''): string[] {
    if (this.first === undefined) return [];
    const more = this.more > 0 ? ` (and ${this.more} more bad item${this.more === 1 ? '' : 's'})` : '';
    return [`${this.first}${more}${suffix}`];
  }
}
