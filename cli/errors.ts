/**
 * Turning any error into one line on stderr and an exit code.
 *
 * @module
 */

import { FfiPermissionError } from "../ffi/libc.ts";
import { ExitCode, ProcwatchError } from "../lib/errors.ts";
import { warn } from "./output.ts";

/** The CLI's arguments as given, before `run` hands `Deno.args` to a script. */
const ORIGINAL_ARGS: readonly string[] = [...Deno.args];

/**
 * The command line that repeats this invocation with the permissions
 * procwatch needs, e.g. `deno run --allow-ffi cli.ts watch --json`
 * (`run` also needs `--allow-read` to load the script).
 *
 * @example
 * ```ts ignore
 * import { exactCommand } from "./errors.ts";
 * console.log(exactCommand()); // deno run --allow-ffi cli.ts watch
 * ```
 */
export function exactCommand(): string {
  let main = Deno.mainModule;
  if (main.startsWith("file://")) {
    main = decodeURIComponent(main.slice("file://".length));
    try {
      const cwd = Deno.cwd();
      if (main.startsWith(`${cwd}/`)) main = main.slice(cwd.length + 1);
    } catch {
      // Without read permission the absolute path is just as exact.
    }
  }
  const flags = ORIGINAL_ARGS[0] === "run" ? ["--allow-ffi", "--allow-read"] : ["--allow-ffi"];
  return ["deno", "run", ...flags, main, ...ORIGINAL_ARGS].map(shellQuote).join(" ");
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** Prints `procwatch: <message>` and returns the exit code for `error`. */
export function reportError(error: unknown): number {
  if (error instanceof FfiPermissionError) {
    warn(`procwatch: needs FFI access to talk to the kernel; run it as: ${exactCommand()}`);
    return ExitCode.NO_FFI;
  }
  if (error instanceof ProcwatchError) {
    warn(`procwatch: ${error.message}`);
    return error.exitCode;
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
