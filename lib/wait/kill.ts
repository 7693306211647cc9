/**
 * Sending a signal by name or number without `--allow-run` (Deno.kill needs
 * it; procwatch scripts run with `--allow-ffi` only).
 *
 * @module
 */

import { sendSignal } from "../../ffi/process.ts";
import { UsageError } from "../../ground/errors.ts";
import { signalNumber } from "../events/signals.ts";

/**
 * Sends `signal` (`"TERM"`, `"SIGKILL"`, `9`) to `pid`. Returns false when
 * the process is already gone; throws {@linkcode UsageError} for an unknown
 * signal name.
 *
 * @param pid The process to signal.
 * @param signal A signal name (with or without `SIG`) or number.
 * @returns `true` when the signal was sent, `false` when `kill(2)` failed
 * (no such process, or not ours to signal).
 * @throws {UsageError} (code `"USAGE"`) for an unknown signal.
 *
 * @example
 * ```ts
 * import { kill } from "@procwatch/procwatch/wait";
 * kill(4242, "SIGTERM");
 * ```
 */
export function kill(pid: number, signal: string | number = "SIGTERM"): boolean {
  const number = checkSignal(signal);
  try {
    sendSignal(pid, number);
    return true;
  } catch {
    return false;
  }
}

/**
 * The number of a signal given by name (`"TERM"`, `"SIGKILL"`, `"SIGRTMIN+2"`)
 * or number; throws {@linkcode UsageError} for one that does not exist. A
 * script checks its `--signal` argument with it at start, before the first
 * {@linkcode kill}.
 *
 * @param signal A signal name (with or without `SIG`) or number, 0–64.
 * @returns The signal's number.
 * @throws {UsageError} (code `"USAGE"`) for a signal that does not exist.
 *
 * @example
 * ```ts
 * import { checkSignal } from "@procwatch/procwatch/wait";
 * console.log(checkSignal("TERM")); // 15
 * ```
 */
export function checkSignal(signal: string | number): number {
  const number = typeof signal === "number" ? signal : signalNumber(signal);
  if (number === undefined || !Number.isInteger(number) || number < 0 || number > 64) {
    throw new UsageError(`unknown signal '${signal}'`);
  }
  return number;
}
