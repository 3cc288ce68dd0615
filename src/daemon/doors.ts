/** From parsed config doors to what the matcher and the action layer need. */
import type { DoorConfig } from '../config/types';
import { canonicalAddress } from '../decode/address';
import type { DoorSpec } from '../model';

export interface RuntimeDoor extends DoorSpec {
  config: DoorConfig;
}

export function toRuntimeDoors(doors: readonly DoorConfig[]): RuntimeDoor[] {
  return doors.map((d) => {
    const target = d.target !== undefined ? canonicalAddress(d.target.trim()) : undefined;
    return {
      name: d.name,
      sequence: d.sequence,
      seqTimeoutMs: d.seqTimeout * 1000,
      tcpFlags: d.tcpFlags,
      ...(d.strictRepeats === true ? { strictRepeats: true } : {}),
      ...(target !== undefined ? { target } : {}),
      action: d.firewalld?.action === 'close' ? 'close' : 'open',
      config: d,
    };
  });
}
