/**
 * Where a watcher gets its process context (the process table, the process
 * filters and the enrichment of lib/process/): a slot that
 * process_context.ts fills when it is loaded, as the package's entries load
 * it (this room's mod.ts). `wait` builds its watchers without it: its graph
 * then leaves out ~15 modules of lib/process/, ~7 ms of its start-up until
 * armed (measured: importing cli/wait.ts took 28–29 ms with them, 20–21
 * without).
 *
 * May import: lib/process/ (types only), ground/ and this room's options.ts (types).
 *
 * @module
 */

import { ProcwatchError } from "../../ground/errors.ts";
import type { EventContext } from "../process/enrich.ts";
import type { WatchSettings } from "./options.ts";

/** Makes the context `settings` ask for; `null` when they ask for none. */
export type ContextMaker = (settings: WatchSettings) => EventContext | null;

let maker: ContextMaker | null = null;

/**
 * Fills the slot (process_context.ts does, once).
 *
 * @example
 * ```ts
 * import { provideContext } from "./context.ts";
 * provideContext(() => null); // a watcher with no context, whatever it is asked
 * ```
 */
export function provideContext(make: ContextMaker): void {
  maker = make;
}

/**
 * The context for `settings`: `null` when they ask for no context and no
 * process filter.
 *
 * @throws {ProcwatchError} (code `"SYSTEM"`) when they ask for one and no
 *   module provided it (an import of `watcher.ts` that bypassed the entries).
 *
 * @example
 * ```ts
 * import { makeContext } from "./context.ts";
 * import { resolveOptions } from "./options.ts";
 * console.log(makeContext(resolveOptions({ events: ["exit"] }))); // null
 * ```
 */
export function makeContext(settings: WatchSettings): EventContext | null {
  if (maker !== null) return maker(settings);
  const filtered = Object.values(settings.filters).some((value) => value !== undefined);
  if (!settings.context && !filtered) return null;
  throw new ProcwatchError(
    "the process context is not loaded: import watch() from the package (lib/watch/mod.ts)",
    "SYSTEM",
  );
}
