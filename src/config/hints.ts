/**
 * Hints for what an admin probably meant: characters that blogs and word
 * processors substitute and that break shell commands, and "did you mean"
 * suggestions for misspelt directive names (edit distance).
 */

import { clip, codePoint } from './text';

/** Keys longer than this get no "did you mean" suggestion (the longest known key has 17 characters). */
const MAX_SUGGEST_KEY = 40;
/** Typographic-dash warnings per command line; then one summary warning. */
const MAX_DASH_WARNINGS = 10;

/**
 * Characters that blogs and word processors substitute and that silently break
 * a shell command: typographic dashes, curly quotes, non-breaking spaces.
 */
export function typographyWarnings(cmd: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let moreDashes = 0;
  for (const m of cmd.matchAll(/[\u2013\u2014](\S*)/g)) {
    const token = m[0];
    if (seen.has(token)) continue;
    seen.add(token);
    if (seen.size > MAX_DASH_WARNINGS) {
      moreDashes += 1;
      continue;
    }
    const rest = m[1] ?? '';
    const code = codePoint(token);
    out.push(
      rest !== ''
        ? `\`${clip(token)}\` looks like \`--${clip(rest)}\` (typographic dash); the command gets the character ${code}, not "--": retype it`
        : `contains a typographic dash "${token}" (${code}); if "-" or "--" was meant, retype it`,
    );
  }
  if (moreDashes > 0)
    out.push(`contains ${moreDashes} more words with a typographic dash (U+2013 or U+2014): retype them with "-"`);
  const quotes = [...new Set(cmd.match(/[\u2018\u2019\u201C\u201D]/g) ?? [])];
  if (quotes.length > 0) {
    out.push(
      `contains typographic quotes ${quotes.join(' ')} (${quotes.map(codePoint).join(', ')}): ` +
        `the shell treats them as ordinary characters, not quotes; use " or ' instead`,
    );
  }
  const spaces = [...new Set(cmd.match(/[\u00A0\u2007\u202F]/g) ?? [])];
  if (spaces.length > 0) {
    out.push(
      `contains a non-breaking space (${spaces.map(codePoint).join(', ')}): the shell does not split words there; ` +
        'retype it as an ordinary space',
    );
  }
  return out;
}

/** ` (did you mean Seq_Timeout?)` when `key` is a near miss of one of `spellings` (the first closest wins). */
export function suggestion(key: string, spellings: readonly string[]): string {
  // editDistance() is O(key length × spelling length): skip keys far longer than any known one.
  if (key.length > MAX_SUGGEST_KEY) return '';
  const upper = key.toUpperCase();
  const limit = upper.length >= 6 ? 2 : 1;
  let best: string | undefined;
  let bestDist = limit + 1;
  for (const s of spellings) {
    const dist = editDistance(upper, s.toUpperCase());
    if (dist < bestDist) {
      best = s;
      bestDist = dist;
    }
  }
  return best !== undefined ? ` (did you mean ${best}?)` : '';
}

/** A hint for keys that contain a non-ASCII space (invisible in most editors). */
export function hiddenSpaceHint(key: string): string {
  return /[\u00A0\u2007\u202F]/.test(key) ? '; it contains a non-breaking space: retype the line' : '';
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      d[i * cols + j] = v;
    }
  }
  return at(a.length, b.length);
}
