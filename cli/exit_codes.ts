/**
 * The CLI's exit codes, documented in README.md and `procwatch help`, and
 * the one mapping from a {@linkcode ProcwatchError}'s code to them.
 *
 * @module
 */

import type { ErrorCode } from "../mod.ts";
import { UNKNOWN_SHELL_STATUS } from "../lib/wait/mod.ts";

/**
 * Exit codes of `procwatch watch` and `run` (and the CLI in general).
 *
 * @example
 * ```ts
 * import { ExitCode } from "./exit_codes.ts";
 * console.log(ExitCode.PERMISSION); // 4
 * ```
 */
export const ExitCode = {
  OK: 0,
  /** An unexpected failure: a bug or an unusual system error. */
  FAILURE: 1,
  /**
   * Bad command line: unknown option or command, missing argument, unknown
   * event name, malformed pid or one above the kernel's limit, a thread id
   * given as a pid, a single-valued option given twice, conflicting options.
   */
  USAGE: 2,
  /**
   * Deno was started without `--allow-ffi` (or, for `run`, without
   * `--allow-read`; for `run --check`, without `--allow-run`). `wait` too.
   */
  NO_FFI: 3,
  /** Not allowed to listen: needs root / CAP_NET_ADMIN on this kernel. */
  PERMISSION: 4,
  /** The kernel sends no proc events here (no CONFIG_PROC_EVENTS, or not the initial namespaces). */
  UNAVAILABLE: 5,
  /** Running in a network namespace other than the initial one. */
  NETWORK_NAMESPACE: 6,
  /** A pid given with `-p`, `--tree` or `--ppid` does not exist (`wait` says 127). */
  NO_SUCH_PROCESS: 7,
  /** A user script failed to load, failed `run --check`, or threw. */
  SCRIPT: 8,
} as const;

/**
 * Exit codes of `procwatch wait` besides the waited-for process's own status
 * (0–255, or 128 + signal). Documented in README.md ("## wait").
 *
 * @example
 * ```ts
 * import { WaitExitCode } from "./exit_codes.ts";
 * console.log(WaitExitCode.TIMEOUT); // 124
 * ```
 */
export const WaitExitCode = {
  /** `--timeout` expired first, as with `timeout(1)`. */
  TIMEOUT: 124,
  /**
   * `wait` could not do its job: it failed to wait at all (no FFI, neither the
   * proc connector nor pidfd usable), or the process ended but its status is
   * unknown (pidfd fallback, or events lost). A note on stderr says which.
   */
  UNKNOWN: UNKNOWN_SHELL_STATUS,
  /** A pid does not exist, as a shell's `wait` says for a pid that is not its child. */
  NO_SUCH_PROCESS: 127,
} as const;

const WATCH_EXIT_CODES: Record<ErrorCode, number> = {
  USAGE: ExitCode.USAGE,
  DENO_PERMISSION: ExitCode.NO_FFI,
  PERMISSION: ExitCode.PERMISSION,
  UNAVAILABLE: ExitCode.UNAVAILABLE,
  NETWORK_NAMESPACE: ExitCode.NETWORK_NAMESPACE,
  NO_SUCH_PROCESS: ExitCode.NO_SUCH_PROCESS,
  TIMEOUT: WaitExitCode.TIMEOUT,
  SYSTEM: ExitCode.FAILURE,
};

/**
 * The exit code `watch` and `run` end with for an error of this code.
 *
 * @example
 * ```ts
 * import { exitCodeOf } from "./exit_codes.ts";
 * console.log(exitCodeOf("NETWORK_NAMESPACE")); // 6
 * ```
 */
export function exitCodeOf(code: ErrorCode): number {
  return WATCH_EXIT_CODES[code];
}
