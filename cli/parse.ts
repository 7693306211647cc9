/**
 * Parsers for command-line values, each failing with a one-line
 * {@linkcode UsageError} that names the bad value.
 *
 * @module
 */

import { EVENT_TYPES, type EventType } from "../lib/events.ts";
import { UsageError } from "../lib/errors.ts";

/** Parses a pid: a positive decimal integer within pid_max's range. */
export function parsePid(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) <= 0 || Number(text) > 4194304) {
    throw new UsageError(`invalid pid '${text}': expected a positive process id`);
  }
  return Number(text);
}

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

/** Parses a non-negative number of seconds (fractions allowed). */
export function parseSeconds(text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < 0) {
    throw new UsageError(`invalid duration '${text}': expected seconds, e.g. 1.5`);
  }
  return value;
}

/** Parses a positive integer count. */
export function parseCount(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) {
    throw new UsageError(`invalid count '${text}': expected a positive integer`);
  }
  return Number(text);
}

/**
 * Parses a byte size with an optional K/M/G suffix (powers of 1024). Sizes
 * past what a socket can get are kept as asked (the socket caps them and
 * `-v` says so); only sizes beyond exact integers (2^53) are refused.
 */
export function parseBytes(text: string): number {
  const match = /^(\d+)([kmg]?)i?b?$/i.exec(text.trim());
  if (!match) throw new UsageError(`invalid size '${text}': expected bytes, e.g. 4M`);
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2].toLowerCase()] ?? 1;
  const bytes = Number(match[1]) * scale;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`invalid size '${text}': too large`);
  return bytes;
}
