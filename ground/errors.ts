/**
 * Errors procwatch reports to its users, each with a one-line message that
 * says what to do, and the exit code the CLI gives for it.
 *
 * @module
 */

/**
 * Exit codes of `procwatch watch` (and the CLI in general). Documented in README.md.
 *
 * @example
 * ```ts ignore
 * import { ExitCode } from "./errors.ts";
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
 * Base class of procwatch's own errors: a message for the user and the exit
 * code the CLI ends with.
 *
 * @example
 * ```ts
 * import { ProcwatchError } from "./errors.ts";
 * try {
 *   throw new ProcwatchError("something went wrong", 1);
 * } catch (error) {
 *   if (error instanceof ProcwatchError) console.error(error.message, error.exitCode);
 * }
 * ```
 */
export class ProcwatchError extends Error {
  /** The exit code the CLI ends with for this error. */
  readonly exitCode: number;
  /** Creates the error. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProcwatchError";
    this.exitCode = exitCode;
  }
}

/**
 * The kernel refused to let this process listen to proc events.
 *
 * @example
 * ```ts
 * import { PermissionError } from "./errors.ts";
 * console.log(new PermissionError().exitCode); // 4
 * ```
 */
export class PermissionError extends ProcwatchError {
  /** Creates the error. */
  constructor(options?: ErrorOptions) {
    super(
      "permission denied opening the proc connector: kernels before 6.6 let only root (CAP_NET_ADMIN) listen to proc events, so run it with sudo; a sandbox (seccomp profile, LSM, container) can also forbid netlink sockets",
      ExitCode.PERMISSION,
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
 * import { ProcEventsUnavailableError } from "./errors.ts";
 * console.log(new ProcEventsUnavailableError("no ACK").exitCode); // 5
 * ```
 */
export class ProcEventsUnavailableError extends ProcwatchError {
  /** Creates the error; `why` says what was observed. */
  constructor(why: string, options?: ErrorOptions) {
    super(
      `proc events unavailable: ${why} (the kernel needs CONFIG_PROC_EVENTS, and procwatch must run in the initial user and pid namespaces)`,
      ExitCode.UNAVAILABLE,
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
 * import { NetworkNamespaceError } from "./errors.ts";
 * console.log(new NetworkNamespaceError().exitCode); // 6
 * ```
 */
export class NetworkNamespaceError extends ProcwatchError {
  /** Creates the error. */
  constructor(options?: ErrorOptions) {
    super(
      "proc connector refused the connection (ECONNREFUSED): procwatch runs in a network namespace other than the host's, and the kernel sends proc events only in the initial one; run it on the host (outside `unshare -n`, containers, `ip netns exec`)",
      ExitCode.NETWORK_NAMESPACE,
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
 * import { UsageError } from "./errors.ts";
 * console.log(new UsageError("unknown event 'frok'").exitCode); // 2
 * ```
 */
export class UsageError extends ProcwatchError {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.USAGE, options);
    this.name = "UsageError";
  }
}

/**
 * A pid the user named does not exist.
 *
 * @example
 * ```ts
 * import { NoSuchProcessError } from "./errors.ts";
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
      ExitCode.NO_SUCH_PROCESS,
      options,
    );
    this.name = "NoSuchProcessError";
    this.pid = pid;
  }
}

/**
 * Exit codes of `procwatch wait` besides the waited-for process's own status
 * (0–255, or 128 + signal). Documented in README.md ("## wait").
 *
 * @example
 * ```ts
 * import { WaitExitCode } from "./errors.ts";
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
  UNKNOWN: 125,
  /** A pid does not exist, as a shell's `wait` says for a pid that is not its child. */
  NO_SUCH_PROCESS: 127,
} as const;

/**
 * The timeout of a wait ran out before the process(es) ended.
 *
 * @example
 * ```ts
 * import { WaitTimeoutError } from "./errors.ts";
 * const error = new WaitTimeoutError([1234], 5000);
 * console.log(error.message, error.exitCode); // "timed out after 5 s waiting for 1234" 124
 * ```
 */
export class WaitTimeoutError extends ProcwatchError {
  /** The pids still running when time ran out. */
  readonly pids: readonly number[];
  /** Creates the error. */
  constructor(pids: readonly number[], timeoutMs: number, options?: ErrorOptions) {
    super(
      `timed out after ${timeoutMs / 1000} s waiting for ${pids.join(", ")}`,
      WaitExitCode.TIMEOUT,
      options,
    );
    this.name = "WaitTimeoutError";
    this.pids = pids;
  }
}
