/** The yes/no words of knockd.conf (UseSyslog, spa_require_source_address), case-insensitive. */

const TRUE_WORDS = new Set(['YES', 'Y', 'TRUE', 'ON', '1']);
const FALSE_WORDS = new Set(['NO', 'N', 'FALSE', 'OFF', '0']);

/** The words, for messages. */
export const YES_NO_WORDS = 'yes or no (also y/n, true/false, on/off, 1/0)';

/** true, false, or undefined when `value` is none of the words. */
export function parseYesNo(value: string): boolean | undefined {
  const v = value.toUpperCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  return undefined;
}
