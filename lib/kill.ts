/**
 * Sending a signal by name or number without `--allow-run` (Deno.kill needs
 * it; procwatch scripts run with `--allow-ffi` only).
 *
 * @module
 */

import { sendSignal } from "../ffi/process.ts";
import { UsageError } from "./errors.ts";
import { signalNumber } from "./signals.ts";

/**
 * Sends `signal` (`"TERM"`, `"SIGKILL"`, `9`) to `pid`. Returns false when
 * the process is already gone; throws {@linkcode UsageError} for an unknown
 * signal name.
 *
 * @example
 * ```ts ignore
 * import { kill } from "../mod.ts";
 * kill(4242, "SIGTERM");
 * ```
 */
export function kill(pid: number, signal: string | number = "SIGTERM"): boolean {
  const number = typeof signal === "number" ? signal : signalNumber(signal);
  if (number === undefined || number < 0 || number > 64) {
    throw new UsageError(`unknown signal '${signal}'`);
  }
  try {
    sendSignal(pid, number);
    return true;
  } catch {
    return false;
  }
}
