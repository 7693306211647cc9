/**
 * The process context plugged into every watcher that asks for one (see
 * context.ts): the process table, the process filters and the enrichment of
 * lib/process/. Loading this module fills the slot.
 *
 * May import: lib/process/ and this room's context.ts and options.ts (types).
 *
 * @module
 */

import { EventContext } from "../process/enrich.ts";
import { compileFilters, hasFilters } from "../process/filters.ts";
import { UserNames } from "../process/users.ts";
import { provideContext } from "./context.ts";
import type { WatchSettings } from "./options.ts";

/**
 * The context `settings` ask for: process filters compiled, and the table
 * with enrichment when `context` is on or a filter needs it; `null` otherwise.
 *
 * @throws {UsageError} (code `"USAGE"`) for an unknown user or a bad filter.
 *
 * @example
 * ```ts
 * import { processContext } from "./process_context.ts";
 * import { resolveOptions } from "./options.ts";
 * console.log(processContext(resolveOptions({}))); // null: nothing asked for
 * ```
 */
export function processContext(settings: WatchSettings): EventContext | null {
  const users = new UserNames();
  const filters = compileFilters(settings.filters, users);
  if (!hasFilters(filters) && !settings.context) return null;
  return new EventContext(filters, users, {
    context: settings.context,
    namespaces: settings.namespaces,
    maxEntries: settings.processTableSize,
    exitGraceMs: settings.exitGraceMs,
    execCapture: settings.execCapture,
    pids: settings.pids,
  });
}

provideContext(processContext);
