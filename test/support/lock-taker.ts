/**
 * One contender in the state-lock race (test/unit/state-lock.test.ts): takes
 * the lock of argv[2], with a random pause of up to argv[3] ms at each step
 * of the take-over (to widen the race windows), prints `won` or
 * `busy: <message>`, then holds on (alive, so that the others see a live
 * holder) until its stdin closes.
 */
import { lockStateDir } from '../../src/state/lock';

const dir = process.argv[2];
const maxPause = Number(process.argv[3] ?? 0);
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * maxPause));

lockStateDir(dir, { pause }).then(
  () => process.stdout.write('won\n'),
  (err: Error) => process.stdout.write(`busy: ${err.message}\n`),
);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
