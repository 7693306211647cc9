/**
 * Making sure every listener unregisters, however the process ends.
 *
 * The kernel counts proc-event listeners and does not forget one whose socket
 * is closed without `PROC_CN_MCAST_IGNORE`: it keeps building events for
 * nobody. So while any watcher is open, procwatch turns SIGINT, SIGTERM and
 * SIGHUP into "unregister, then exit as the signal would", and unregisters on
 * `unload` and on an uncaught error or rejection.
 *
 * @module
 */

/** Something to shut down synchronously before the process exits. */
export interface Closable {
  /** Unregisters from the kernel and releases resources; must not throw. */
  close(): void;
}

/** Signals that end the process by default, with their numbers. */
const FATAL_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

const open = new Set<Closable>();
const withSignals = new Set<Closable>();
let globalsInstalled = false;
let signalsInstalled = false;

/**
 * Closes every open watcher now (each sends `PROC_CN_MCAST_IGNORE`). For
 * runners that end the process themselves, e.g. after a user script failed.
 *
 * @example
 * ```ts
 * import { closeAll, track } from "./lifecycle.ts";
 * track({ close() {} }, false);
 * closeAll(); // the tracked item is closed (and untracks itself when it is a watcher)
 * ```
 */
export function closeAll(): void {
  for (const item of [...open]) {
    try {
      item.close();
    } catch {
      // Exiting anyway; the next one must still be closed.
    }
  }
}

function exitOn(signal: number): () => void {
  return () => {
    closeAll();
    Deno.exit(128 + signal);
  };
}

const signalHandlers: Record<keyof typeof FATAL_SIGNALS, () => void> = {
  SIGHUP: exitOn(FATAL_SIGNALS.SIGHUP),
  SIGINT: exitOn(FATAL_SIGNALS.SIGINT),
  SIGTERM: exitOn(FATAL_SIGNALS.SIGTERM),
};

function warmUp(): void {}

function onUnload(): void {
  closeAll();
}

function installSignals(install: boolean): void {
  if (install === signalsInstalled) return;
  signalsInstalled = install;
  for (const name of Object.keys(FATAL_SIGNALS) as (keyof typeof FATAL_SIGNALS)[]) {
    try {
      if (install) Deno.addSignalListener(name, signalHandlers[name]);
      else Deno.removeSignalListener(name, signalHandlers[name]);
    } catch {
      // Signals cannot be observed here (e.g. in a Worker): unload still closes.
    }
  }
}

/**
 * Tracks an open watcher. With `handleSignals`, SIGINT/SIGTERM/SIGHUP close it
 * and exit with 128 + the signal number, as the default action would.
 *
 * @example
 * ```ts
 * import { track, untrack } from "./lifecycle.ts";
 * const thing = { close() {} };
 * track(thing, false);
 * untrack(thing);
 * ```
 */
export function track(item: Closable, handleSignals: boolean): void {
  open.add(item);
  if (handleSignals) withSignals.add(item);
  if (!globalsInstalled) {
    globalsInstalled = true;
    globalThis.addEventListener("unload", onUnload);
    globalThis.addEventListener("error", onUnload);
    globalThis.addEventListener("unhandledrejection", onUnload);
    // Removing a listener first costs ~0.3 ms (Deno compiles that code on
    // its first call): paid now rather than by the first close(), which for
    // `procwatch wait` stands between a death and the shell.
    globalThis.removeEventListener("unload", warmUp);
  }
  installSignals(withSignals.size > 0);
}

/**
 * Stops tracking a closed watcher; the last one restores default signal handling.
 *
 * @example
 * ```ts
 * import { track, untrack } from "./lifecycle.ts";
 * const thing = { close() {} };
 * track(thing, true);
 * untrack(thing); // SIGINT ends the process by default again
 * ```
 */
export function untrack(item: Closable): void {
  open.delete(item);
  withSignals.delete(item);
  installSignals(withSignals.size > 0);
  if (open.size === 0 && globalsInstalled) {
    globalsInstalled = false;
    globalThis.removeEventListener("unload", onUnload);
    globalThis.removeEventListener("error", onUnload);
    globalThis.removeEventListener("unhandledrejection", onUnload);
  }
}
