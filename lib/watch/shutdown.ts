/**
 * How a watcher ends: `close()` (also through `using`, `await using`, an
 * abort signal, leaving a `for await` loop, or the process ending; see
 * lifecycle.ts) runs once, and the watcher stays registered with
 * lifecycle.ts exactly while it is open, so the kernel is told
 * `PROC_CN_MCAST_IGNORE` however the process ends.
 *
 * May import: this room's lifecycle.ts.
 *
 * @module
 */

import { type Closable, track, untrack } from "./lifecycle.ts";

/**
 * The open/closing state of one watcher and its registrations: the process
 * lifecycle (signals, unload) and the caller's `AbortSignal`.
 *
 * @example
 * ```ts
 * import { Shutdown } from "./shutdown.ts";
 * const abort = new AbortController();
 * const closable = {
 *   close() {
 *     if (!shutdown.begin()) return; // once only
 *     // ... unregister, release ...
 *     shutdown.end();
 *   },
 * };
 * const shutdown = new Shutdown(closable, abort.signal, false);
 * abort.abort(); // closes it
 * console.log(shutdown.closing); // true
 * ```
 */
export class Shutdown {
  readonly #target: Closable;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort: () => void;
  #closing = false;

  /**
   * Registers `target` (opened and subscribed): `signal` aborting and, with
   * `handleSignals`, SIGINT/SIGTERM/SIGHUP close it.
   */
  constructor(target: Closable, signal: AbortSignal | undefined, handleSignals: boolean) {
    this.#target = target;
    this.#signal = signal;
    this.#onAbort = () => target.close();
    track(target, handleSignals);
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Whether closing has begun. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Starts closing; `false` when it already had (close again is a no-op). */
  begin(): boolean {
    if (this.#closing) return false;
    this.#closing = true;
    return true;
  }

  /** Drops the registrations, once the target has unregistered from the kernel. */
  end(): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    untrack(this.#target);
  }
}
