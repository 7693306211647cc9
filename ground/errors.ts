/**
 * Errors procwatch reports to its users: one root, {@linkcode ProcwatchError},
 * whose {@linkcode ErrorCode} says what went wrong and whose one-line message
 * says what to do. The CLI turns codes into exit codes (cli/exit_codes.ts).
 *
 * A ground module: it imports nothing, and every layer may import it.
 *
 * @module
 */

/**
 * What went wrong, as a {@linkcode ProcwatchError} says it:
 *
 * - `"USAGE"`: a bad argument (unknown event name, malformed pid, bad number).
 * - `"DENO_PERMISSION"`: Deno was started without a permission procwatch needs
 *   (`--allow-ffi`, or `--allow-net` for an exporter).
 * - `"PERMISSION"`: the kernel refused to let this process listen.
 * - `"UNAVAILABLE"`: the kernel sends no proc events here, and no fallback works.
 * - `"NETWORK_NAMESPACE"`: running outside the initial network namespace.
 * - `"NO_SUCH_PROCESS"`: a pid that does not exist.
 * - `"TIMEOUT"`: a wait's timeout ran out.
 * - `"SYSTEM"`: a libc call failed in a way procwatch does not expect.
 *
 * @example
 * ```ts
 * import { type ErrorCode, ProcwatchError, waitForExit } from "@procwatch/procwatch";
 *
 * const codes: Partial<Record<ErrorCode, number>> = { NO_SUCH_PROCESS: 127, TIMEOUT: 124 };
 * try {
 *   await waitForExit(1234, { timeout: 1_000 });
 * } catch (error) {
 *   if (!(error instanceof ProcwatchError)) throw error;
 *   console.error(`procwatch: ${error.message}`);
 *   Deno.exitCode = codes[error.code] ?? 1;
 * }
 * ```
 */
export type ErrorCode =
  | "USAGE"
  | "DENO_PERMISSION"
  | "PERMISSION"
  | "UNAVAILABLE"
  | "NETWORK_NAMESPACE"
  | "NO_SUCH_PROCESS"
  | "TIMEOUT"
  | "SYSTEM";

/**
 * The root of every error procwatch throws: a one-line message for the user
 * and a {@linkcode ErrorCode} for the program.
 *
 * @example
 * ```ts
 * import { ProcwatchError } from "@procwatch/procwatch";
 * try {
 *   throw new ProcwatchError("unknown event 'frok'", "USAGE");
 * } catch (error) {
 *   if (error instanceof ProcwatchError) console.error(error.code, error.message);
 * }
 * ```
 */
export class ProcwatchError extends Error {
  /** What went wrong. */
  readonly code: ErrorCode;
  /** Creates the error. */
  constructor(message: string, code: ErrorCode, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProcwatchError";
    this.code = code;
  }
}

/**
 * The kernel refused to let this process listen to proc events.
 *
 * @example
 * ```ts
 * import { PermissionError } from "@procwatch/procwatch";
 * console.log(new PermissionError().code); // "PERMISSION"
 * ```
 */
export class PermissionError extends ProcwatchError {
  /** Creates the error. */
  constructor(options?: ErrorOptions) {
    super(
      "permission denied opening the proc connector: kernels before 6.6 let only root (CAP_NET_ADMIN) listen to proc events, so run it with sudo; a sandbox (seccomp profile, LSM, container) can also forbid netlink sockets",
      "PERMISSION",
      options,
    );
    this.name = "PermissionError";
  }
}

/**
 * The kernel sends no proc events to this process.
 *
 * @example
 * ```ts
 * import { ProcEventsUnavailableError } from "@procwatch/procwatch";
 * console.log(new ProcEventsUnavailableError("no ACK").code); // "UNAVAILABLE"
 * ```
 */
export class ProcEventsUnavailableError extends ProcwatchError {
  /** Creates the error; `why` says what was observed. */
  constructor(why: string, options?: ErrorOptions) {
    super(
      `proc events unavailable: ${why} (the kernel needs CONFIG_PROC_EVENTS, and procwatch must run in the initial user and pid namespaces)`,
      "UNAVAILABLE",
      options,
    );
    this.name = "ProcEventsUnavailableError";
  }
}

/**
 * The proc connector exists only in the initial network namespace.
 *
 * @example
 * ```ts
 * import { NetworkNamespaceError } from "@procwatch/procwatch";
 * console.log(new NetworkNamespaceError().code); // "NETWORK_NAMESPACE"
 * ```
 */
export class NetworkNamespaceError extends ProcwatchError {
  /** Creates the error. */
  constructor(options?: ErrorOptions) {
    super(
      "proc connector refused the connection (ECONNREFUSED): procwatch runs in a network namespace other than the host's, and the kernel sends proc events only in the initial one; run it on the host (outside `unshare -n`, containers, `ip netns exec`)",
      "NETWORK_NAMESPACE",
      options,
    );
    this.name = "NetworkNamespaceError";
  }
}

/**
 * A bad argument from the user: unknown event name, malformed pid, bad number.
 *
 * @example
 * ```ts
 * import { UsageError } from "@procwatch/procwatch";
 * console.log(new UsageError("unknown event 'frok'").code); // "USAGE"
 * ```
 */
export class UsageError extends ProcwatchError {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, "USAGE", options);
    this.name = "UsageError";
  }
}

/**
 * A pid the user named does not exist.
 *
 * @example
 * ```ts
 * import { NoSuchProcessError } from "@procwatch/procwatch";
 * console.log(new NoSuchProcessError(999999).message); // "no such process: 999999"
 * ```
 */
export class NoSuchProcessError extends ProcwatchError {
  /** The pid that does not exist. */
  readonly pid: number;
  /** Creates the error; `options.why` adds what is known, e.g. that the pid is beyond pid_max. */
  constructor(pid: number, options?: ErrorOptions & { why?: string }) {
    super(
      `no such process: ${pid}${options?.why ? ` (${options.why})` : ""}`,
      "NO_SUCH_PROCESS",
      options,
    );
    this.name = "NoSuchProcessError";
    this.pid = pid;
  }
}

/**
 * The timeout of a wait ran out before the process(es) ended.
 *
 * @example
 * ```ts
 * import { WaitTimeoutError } from "@procwatch/procwatch";
 * const error = new WaitTimeoutError([1234], 5000);
 * console.log(error.message, error.code); // "timed out after 5 s waiting for 1234" "TIMEOUT"
 * ```
 */
export class WaitTimeoutError extends ProcwatchError {
  /** The pids still running when time ran out. */
  readonly pids: readonly number[];
  /** Creates the error. */
  constructor(pids: readonly number[], timeoutMs: number, options?: ErrorOptions) {
    super(
      `timed out after ${timeoutMs / 1000} s waiting for ${pids.join(", ")}`,
      "TIMEOUT",
      options,
    );
    this.name = "WaitTimeoutError";
    this.pids = pids;
  }
}
