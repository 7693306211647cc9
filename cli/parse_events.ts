/**
 * The parsers of event-type lists (`watch -e exec,exit`), apart from
 * parse.ts so that `wait`, which has no event option, does not load the
 * package's whole entry for the event table.
 *
 * @module
 */

import { EVENT_TYPES, type EventType, UsageError } from "../mod.ts";

/** Parses a comma-separated event list; `all` means every type. */
export function parseEvents(text: string): EventType[] {
  const names = text.split(",").map((name) => name.trim().toLowerCase()).filter((name) => name);
  if (names.length === 0) throw new UsageError("empty event list");
  if (names.includes("all")) return [...EVENT_TYPES];
  for (const name of names) {
    if (!(EVENT_TYPES as readonly string[]).includes(name)) {
      throw new UsageError(`unknown event '${name}' (known: ${EVENT_TYPES.join(", ")}, all)`);
    }
  }
  return names as EventType[];
}

/**
 * Parses an event list and adds it to the events of earlier `-e` options.
 *
 * @example
 * ```ts
 * import { addEvents } from "./parse_events.ts";
 * console.log(addEvents("exit", ["exec"])); // ["exec", "exit"]
 * ```
 */
export function addEvents(text: string, previous: readonly EventType[] | undefined): EventType[] {
  return unique([...(previous ?? []), ...parseEvents(text)]);
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}
