/** A door while the parser builds it: the DoorConfig so far, and what the whole-door checks need. */

import type { SpaDirective, SpaRawValue } from './spa';
import type { DoorConfig, FirewalldDoor } from './types';

/** Knockd's defaults. */
export const DEFAULT_SEQ_TIMEOUT = 25;
export const DEFAULT_CMD_TIMEOUT = 10;

export interface DoorBuilder {
  door: DoorConfig;
  /** Its name repeats an earlier door's (already reported; left out of cross-door checks). */
  duplicate: boolean;
  /** firewalld directives that parsed cleanly. */
  fw: {
    action?: FirewalldDoor['action'];
    zone?: string;
    services?: string[];
    ports?: FirewalldDoor['ports'];
  };
  /** spa_* directives as written (validated together by checkSpaDoor). */
  spa: Partial<Record<SpaDirective, SpaRawValue>>;
}

export function newDoor(name: string, line: number, duplicate: boolean): DoorBuilder {
  return {
    door: {
      name,
      line,
      sequence: [],
      seqTimeout: DEFAULT_SEQ_TIMEOUT,
      tcpFlags: { set: 0, clear: 0 },
      cmdTimeout: DEFAULT_CMD_TIMEOUT,
      cmdTimeoutSet: false,
      lines: {},
    },
    duplicate,
    fw: {},
    spa: {},
  };
}
