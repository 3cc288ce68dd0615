/**
 * The firewalld zone-name grammar, for `firewalld_zone =`, `firewall-cmd
 * --zone=` in converted commands, and the zones of grants.json entries.
 *
 * firewalld itself takes letters, digits, "_" and "-", and at most one "/"
 * (neither first nor last); the part before the "/" is at most 17 characters
 * (firewalld's max_zone_name_len: its longest chain name must fit netfilter's
 * limit). We accept ASCII letters only, and cap the whole name at
 * MAX_ZONE_NAME_CHARS.
 */

/** Longest zone name (before any "/") firewalld accepts. */
export const MAX_ZONE_BASE_CHARS = 17;
/** Longest whole zone name we accept (base, "/" and the rest). */
export const MAX_ZONE_NAME_CHARS = 64;

const ZONE_NAME = /^[A-Za-z0-9_-]{1,17}(?:\/[A-Za-z0-9_-]+)?$/;

export function isZoneName(name: string): boolean {
  return name.length <= MAX_ZONE_NAME_CHARS && ZONE_NAME.test(name);
}

/** What a zone name is, for messages. */
export const ZONE_NAME_FORM =
  `a zone name is 1-${MAX_ZONE_BASE_CHARS} letters, digits, "_" or "-", optionally followed by "/" and more of them ` +
  `(at most ${MAX_ZONE_NAME_CHARS} characters in all; no spaces or quotes)`;
