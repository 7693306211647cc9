/**
 * Turning any error into one line on stderr and an exit code.
 *
 * Every exit code of the CLI (README.md, "Exit codes" and "## wait"):
 *
 * | code    | `watch`, `run`                                                    | `wait`                                  |
 * | ------- | ----------------------------------------------------------------- | --------------------------------------- |
 * | 0       | done (`-D`, `-n`, reader left, script finished)                    | 0–255: status of the process waited for |
 * | 1       | unexpected failure (a bug; `PROCWATCH_DEBUG=1` prints the stack)   | (as the process's status)               |
 * | 2       | bad command line: option parser, bad value, thread id, conflicts   | the same                                |
 * | 3       | a Deno permission is missing (`--allow-ffi`, `--allow-read`, `--allow-run` for `run --check`) | the same |
 * | 4       | the kernel or a sandbox refuses to let procwatch listen           | (falls back to pidfd)                   |
 * | 5       | no proc events here (no connector, or not the initial namespaces) | (falls back to pidfd)                   |
 * | 6       | another network namespace                                        | (falls back to pidfd)                   |
 * | 7       | a pid of `-p`, `--tree`, `--ppid` names no process                | 127                                     |
 * | 8       | `run`: the script failed to load, to type-check, or threw          | —                                       |
 * | 124     | —                                                                 | `--timeout` expired                     |
 * | 125     | —                                                                 | status unknown, or could not wait       |
 * | 128 + n | ended by signal n (SIGHUP, SIGINT, SIGTERM) after unregistering   | the same                                |
 *
 * `-r` without the privilege for real-time priority is a warning, not an error.
 *
 * @module
 */

import { warn } from "../lib/format/mod.ts";
import { FfiPermissionError, ProcwatchError } from "../lib/wait/mod.ts";
import { ExitCode, exitCodeOf } from "./exit_codes.ts";
import { rerunCommand } from "../ground/rerun.ts";

/** The CLI's arguments as given, before `run` hands `Deno.args` to a script. */
const ORIGINAL_ARGS: readonly string[] = [...Deno.args];

/**
 * The command line that repeats this invocation with the permissions
 * procwatch needs, e.g. `deno run --allow-ffi cli.ts watch --json`
 * (`run` also needs `--allow-read` to load the script, and `--allow-run`
 * for `run --check`).
 *
 * @example
 * ```ts
 * import { exactCommand } from "./errors.ts";
 * console.log(exactCommand()); // deno run --allow-ffi cli.ts watch
 * ```
 */
export function exactCommand(): string {
  const flags = ["--allow-ffi"];
  if (ORIGINAL_ARGS[0] === "run") {
    flags.push("--allow-read");
    if (runChecks(ORIGINAL_ARGS)) flags.push("--allow-run");
  }
  return rerunCommand(flags, ORIGINAL_ARGS);
}

/** Whether `run`'s own options (before the script) include `--check`. */
function runChecks(args: readonly string[]): boolean {
  for (const arg of args.slice(1)) {
    if (arg === "--check") return true;
    if (!arg.startsWith("-")) return false;
  }
  return false;
}

/**
 * One line for an error of the option parser (commander writes
 * `error: unknown option '--jsn'` and maybe `(Did you mean --json?)` on a
 * second line): `procwatch: unknown option '--jsn' (did you mean --json?);
 * see 'procwatch watch --help'`.
 *
 * @example
 * ```ts
 * import { usageLine } from "./errors.ts";
 * console.log(usageLine("error: missing required argument 'pid'\n", "procwatch wait"));
 * // procwatch: missing required argument 'pid'; see 'procwatch wait --help'
 * ```
 */
export function usageLine(text: string, command: string): string {
  const [first = "bad command line", ...rest] = text.replace(/^error: /, "").split("\n")
    .map((line) => line.trim()).filter((line) => line !== "");
  const hints = rest.map((line) => line.replace(/^\((.*)\)$/, "$1"))
    .map((line) => line.charAt(0).toLowerCase() + line.slice(1));
  const what = first.replace(/\.$/, "");
  return `procwatch: ${what}${
    hints.length > 0 ? ` (${hints.join("; ")})` : ""
  }; see '${command} --help'`;
}

/** Prints `procwatch: <message>` and returns the exit code for `error`. */
export function reportError(error: unknown): number {
  if (error instanceof FfiPermissionError) {
    warn(`procwatch: needs FFI access to talk to the kernel; run it as: ${exactCommand()}`);
    return ExitCode.NO_FFI;
  }
  // A failed libc call ("SYSTEM") is not something the user can fix by the
  // message alone: it is reported as unexpected, with its cause on request.
  if (error instanceof ProcwatchError && error.code !== "SYSTEM") {
    warn(`procwatch: ${error.message}`);
    return exitCodeOf(error.code);
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    warn(`procwatch: ${firstLine(error)}`);
    return ExitCode.NO_FFI;
  }
  warn(`procwatch: unexpected error: ${firstLine(error)}`);
  if (Deno.env.get !== undefined && safeEnv("PROCWATCH_DEBUG")) console.error(error);
  return ExitCode.FAILURE;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}

function safeEnv(name: string): boolean {
  try {
    return Deno.env.get(name) !== undefined;
  } catch {
    return false;
  }
}
