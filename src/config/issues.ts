/**
 * The errors and warnings of one file, with the bounds on how many are
 * reported, so that a hostile or garbage file (or `knockd --check` on one)
 * gives a bounded amount of output.
 */

import type { ConfigIssue } from './types';

/** Errors reported per file; then one final "too many errors" error, and the scan stops. */
export const MAX_ERRORS = 1000;
/** Warnings reported per file (the first ones by line); then one summary warning. */
export const MAX_WARNINGS = 1000;

/**
 * `knockd.conf:12: error: [openSSH] message`. The `[door]` part is left out for
 * issues that belong to no door, the `:line` part for whole-file issues (line 0).
 */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}` : i.file;
  const door = i.door !== undefined ? `[${i.door}] ` : '';
  return `${where}: ${i.severity}: ${door}${i.message}`;
}

/** Where the checks report: an error or a warning on a line, for a door or none. */
export interface Report {
  error(line: number, message: string, door?: string): void;
  warn(line: number, message: string, door?: string): void;
}

export class IssueLog implements Report {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  /** Set (to the line of the first error not reported) once MAX_ERRORS errors have been reported. */
  private stopLine: number | undefined;

  constructor(private readonly file: string) {}

  /** MAX_ERRORS errors were reported: the scan stops, the file is rejected anyway. */
  get stopped(): boolean {
    return this.stopLine !== undefined;
  }

  error(line: number, message: string, door?: string): void {
    if (this.stopLine !== undefined) return;
    if (this.errors.length >= MAX_ERRORS) {
      this.stopLine = line;
      return;
    }
    this.errors.push(issue('error', this.file, line, message, door));
  }

  warn(line: number, message: string, door?: string): void {
    this.warnings.push(issue('warning', this.file, line, message, door));
  }

  /** Sorts both lists by line and adds the "too many" summaries. */
  close(): void {
    sortIssues(this.errors);
    sortIssues(this.warnings);
    if (this.stopLine !== undefined) {
      const last = this.errors[this.errors.length - 1]?.line ?? 0;
      const line = Math.max(this.stopLine, last);
      this.errors.push(
        issue(
          'error',
          this.file,
          line,
          `too many errors (more than ${MAX_ERRORS}); stopping at line ${line}: fix the errors above and check again`,
        ),
      );
    }
    if (this.warnings.length > MAX_WARNINGS) {
      // Keep the first ones by line; the summary goes on the first line left out.
      const omitted = this.warnings.length - MAX_WARNINGS;
      const line = this.warnings[MAX_WARNINGS].line;
      this.warnings.length = MAX_WARNINGS;
      this.warnings.push(
        issue(
          'warning',
          this.file,
          line,
          `too many warnings: ${omitted} more not shown (at most ${MAX_WARNINGS} are reported)`,
        ),
      );
    }
  }
}

function issue(
  severity: ConfigIssue['severity'],
  file: string,
  line: number,
  message: string,
  door?: string,
): ConfigIssue {
  const i: ConfigIssue = { severity, file, line, message };
  if (door !== undefined && door !== '') i.door = door;
  return i;
}

export function sortIssues(list: ConfigIssue[]): void {
  list.sort((x, y) => x.line - y.line); // Array.prototype.sort is stable.
}
