/**
 * The process-wide safety net: labs still running when the process exits or
 * gets SIGINT/SIGTERM/SIGHUP are torn down synchronously (best effort).
 */

/** A lab as the hooks see it. */
export interface Destroyable {
  /** Synchronous, best-effort teardown. */
  destroySync(): void;
}

const activeLabs = new Set<Destroyable>();
let hooksInstalled = false;
const HOOK_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onExit(): void {
  for (const lab of [...activeLabs]) lab.destroySync();
}

function onSignal(sig: NodeJS.Signals): void {
  // If somebody else (a CLI, the test runner) also handles this signal, let
  // them drive the shutdown; the 'exit' hook remains the safety net.
  if (process.listenerCount(sig) > 1) return;
  onExit();
  uninstallHooks();
  process.kill(process.pid, sig); // re-raise with default disposition
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExit);
  for (const s of HOOK_SIGNALS) process.on(s, onSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', onExit);
  for (const s of HOOK_SIGNALS) process.off(s, onSignal);
}

/** A lab starts: it is destroyed on exit unless released first. */
export function guard(lab: Destroyable): void {
  activeLabs.add(lab);
  installHooks();
}

/** A lab is gone: the hooks go too once no lab is left. */
export function release(lab: Destroyable): void {
  activeLabs.delete(lab);
  if (activeLabs.size === 0) uninstallHooks();
}
