/**
 * Signal names and wait-status decoding (Linux, x86_64 and the generic ABI).
 *
 * @module
 */

const SIGNAL_NAMES: readonly string[] = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/** glibc's SIGRTMIN: the kernel's 32 and 33 are taken by the C library. */
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/**
 * The name of a signal number: `9` → `"SIGKILL"`, `36` → `"SIGRTMIN+2"`.
 *
 * @example
 * ```ts
 * import { signalName } from "@procwatch/procwatch";
 * console.log(signalName(15)); // "SIGTERM"
 * ```
 */
export function signalName(signal: number): string {
  if (signal > 0 && signal < SIGNAL_NAMES.length) return SIGNAL_NAMES[signal];
  if (signal >= SIGRTMIN && signal <= SIGRTMAX) {
    return signal === SIGRTMIN ? "SIGRTMIN" : `SIGRTMIN+${signal - SIGRTMIN}`;
  }
  return `SIG${signal}`;
}

/**
 * The number of a signal name, with or without the `SIG` prefix, or of a
 * decimal number; `undefined` when unknown.
 *
 * @example
 * ```ts
 * import { signalNumber } from "./signals.ts";
 * console.log(signalNumber("TERM")); // 15
 * ```
 */
export function signalNumber(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  const upper = name.toUpperCase();
  const full = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  const index = SIGNAL_NAMES.indexOf(full);
  if (index > 0) return index;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(full);
  if (rt) return SIGRTMIN + Number(rt[1] ?? 0);
  return undefined;
}

/**
 * How a process ended, decoded from a wait status.
 *
 * @example
 * ```ts
 * import { decodeWaitStatus } from "@procwatch/procwatch";
 * const status = decodeWaitStatus(0x8b);
 * console.log(status.signal, status.coreDumped); // "SIGSEGV" true
 * ```
 */
export interface WaitStatus {
  /** The exit code when the process exited, else `null`. */
  exitCode: number | null;
  /** The signal name when a signal killed it, else `null`. */
  signal: string | null;
  /** The signal number when a signal killed it, else `null`. */
  signalNumber: number | null;
  /** Whether a core dump was written. */
  coreDumped: boolean;
}

/**
 * Decodes a wait status as `WIFEXITED`/`WTERMSIG`/`WCOREDUMP` do
 * (`task_struct.exit_code`, which the kernel puts in the exit event).
 *
 * @example
 * ```ts
 * import { decodeWaitStatus } from "@procwatch/procwatch";
 * console.log(decodeWaitStatus(768)); // { exitCode: 3, signal: null, ... }
 * ```
 */
export function decodeWaitStatus(status: number): WaitStatus {
  const termSignal = status & 0x7f;
  if (termSignal === 0) {
    return { exitCode: (status >> 8) & 0xff, signal: null, signalNumber: null, coreDumped: false };
  }
  return {
    exitCode: null,
    signal: signalName(termSignal),
    signalNumber: termSignal,
    coreDumped: (status & 0x80) !== 0,
  };
}

/**
 * The status a POSIX shell gives for a process that ended this way: the exit
 * code, or 128 + the signal number.
 *
 * @example
 * ```ts
 * import { decodeWaitStatus, shellStatus } from "@procwatch/procwatch";
 * console.log(shellStatus(decodeWaitStatus(9))); // 137
 * ```
 */
export function shellStatus(status: WaitStatus): number {
  if (status.exitCode !== null) return status.exitCode;
  return 128 + (status.signalNumber ?? 0);
}
