/**
 * Parsers for command-line values, each failing with a one-line
 * {@linkcode UsageError} that names the bad value.
 *
 * Commander calls a parser with the value and what the option held before,
 * so a parser also decides what a repeated option means: list options
 * accumulate (`-e exec -e exit` is `-e exec,exit`), single-valued ones refuse
 * a second value ({@linkcode once}) instead of silently keeping the last.
 *
 * @module
 */

import { PID_MAX_LIMIT } from "../ground/pid_limits.ts";
import { UsageError } from "../lib/wait/mod.ts";

/**
 * Parses a pid: a positive decimal integer no larger than the kernel's
 * `PID_MAX_LIMIT` (4194304, include/linux/threads.h).
 *
 * @example
 * ```ts
 * import { parsePid } from "./parse.ts";
 * console.log(parsePid("1234")); // 1234
 * ```
 */
export function parsePid(text: string): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || Number(trimmed) <= 0) {
    throw new UsageError(`invalid pid '${text}': expected a positive process id`);
  }
  if (Number(trimmed) > PID_MAX_LIMIT) {
    throw new UsageError(
      `invalid pid '${text}': above the kernel's pid limit (${PID_MAX_LIMIT}, PID_MAX_LIMIT)`,
    );
  }
  return Number(trimmed);
}

/**
 * Parses a comma-separated pid list (`1234,5678`) and appends it to
 * `previous`: `-p 1 -p 2` and `-p 1,2` mean the same.
 *
 * @example
 * ```ts
 * import { addPids } from "./parse.ts";
 * console.log(addPids("3,4", [1])); // [1, 3, 4]
 * ```
 */
export function addPids(text: string, previous: readonly number[] | undefined): number[] {
  const pids = text.split(",").map((part) => part.trim());
  if (pids.some((pid) => pid === "")) {
    throw new UsageError(`invalid pid list '${text}': expected pids separated by commas`);
  }
  return unique([...(previous ?? []), ...pids.map(parsePid)]);
}

/**
 * Adds a comma-separated list of words (names, users) to earlier ones;
 * an empty word is refused (`--comm a,,b`).
 *
 * @example
 * ```ts
 * import { addWords } from "./parse.ts";
 * console.log(addWords("--uid", "nobody", ["root"])); // ["root", "nobody"]
 * ```
 */
export function addWords(
  option: string,
  text: string,
  previous: readonly string[] | undefined,
): string[] {
  const words = text.split(",").map((word) => word.trim());
  if (words.some((word) => word === "")) {
    throw new UsageError(`invalid ${option} '${text}': empty name in the list`);
  }
  return unique([...(previous ?? []), ...words]);
}

/**
 * Wraps the parser of an option that takes one value, so that giving it twice
 * is refused in one line rather than the last value silently winning.
 *
 * @example
 * ```ts
 * import { once, parseSeconds } from "./parse.ts";
 * const parse = once("--timeout", parseSeconds);
 * console.log(parse("5", undefined)); // 5
 * // parse("6", 5) throws: "--timeout given twice ('5', then '6'): it takes one value"
 * ```
 */
export function once<T>(
  option: string,
  parse: (text: string) => T,
): (text: string, previous: T | undefined) => T {
  return (text, previous) => {
    if (previous !== undefined) {
      throw new UsageError(
        `${option} given twice ('${previous}', then '${text}'): it takes one value`,
      );
    }
    return parse(text);
  };
}

/** Returns the value as given: for options whose value is checked later. */
export function verbatim(value: string): string {
  return value;
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

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}
