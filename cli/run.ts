/**
 * `procwatch run SCRIPT [args...]`: runs a user's watch script (one that
 * imports `mod.ts` and calls `watch()`) with procwatch's error handling
 * around it: a script that cannot be loaded or that throws is reported in one
 * or two lines with its file:line:col, every watcher it opened is
 * unregistered, and the exit code says what happened (see README "Exit codes").
 *
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { FfiPermissionError } from "../ffi/libc.ts";
import { ExitCode, ProcwatchError } from "../lib/errors.ts";
import { closeAll } from "../lib/lifecycle.ts";
import { exactCommand, reportError } from "./errors.ts";
import { warn } from "./output.ts";

/**
 * Builds the `run` subcommand.
 *
 * @example
 * ```ts ignore
 * import { Command } from "@commander-js/extra-typings";
 * import { runCommand } from "./run.ts";
 * await new Command("procwatch").addCommand(runCommand()).parseAsync(["run", "s.ts"], { from: "user" });
 * ```
 */
export function runCommand(): Command {
  return new Command("run")
    .description("run a watch script (it imports mod.ts); its own arguments follow it")
    .argument("<script>", "path of the script (.ts or .js)")
    .argument("[args...]", "arguments for the script, seen as Deno.args")
    .passThroughOptions()
    .allowUnknownOption()
    .action(async (script, args) => {
      Deno.exitCode = await runScript(script, args);
    }) as unknown as Command;
}

/** Where procwatch's own modules live: stack frames there are not the user's. */
const PROCWATCH_ROOT = new URL("../", import.meta.url).href;

let outlivesMain = false;

/**
 * Whether a script started by {@linkcode runScript} loaded fine and may still
 * have work queued (its watchers, timers): then the CLI must not call
 * `Deno.exit()` but let the process end by itself, with exit code 0, when the
 * work is done. A later failure exits from this module's handlers.
 *
 * @example
 * ```ts ignore
 * import { scriptOutlivesMain } from "./run.ts";
 * if (!scriptOutlivesMain()) Deno.exit(0);
 * ```
 */
export function scriptOutlivesMain(): boolean {
  return outlivesMain;
}

/**
 * Loads and runs `script` with `args` as its `Deno.args`. Returns the exit
 * code once its module has been evaluated: 0 (see
 * {@linkcode scriptOutlivesMain}), or {@linkcode ExitCode.SCRIPT} when it
 * fails to load or throws (a {@linkcode ProcwatchError} it lets escape keeps
 * its own exit code). An error thrown later, in a callback, or a rejection
 * nobody handles, is reported the same way and ends the process at once.
 * Every watcher the script opened is closed (unregistered) on failure.
 *
 * @example
 * ```ts ignore
 * import { runScript } from "./run.ts";
 * Deno.exitCode = await runScript("scripts/failures.ts", []);
 * ```
 */
export async function runScript(script: string, args: string[]): Promise<number> {
  const url = scriptUrl(script);
  try {
    Object.defineProperty(Deno, "args", { value: Object.freeze([...args]), configurable: true });
  } catch {
    // The script sees the CLI's arguments instead; nothing else depends on it.
  }
  const fail = (error: unknown) => {
    const code = report(error, url, false);
    closeAll();
    Deno.exit(code);
  };
  globalThis.addEventListener("error", (event: ErrorEvent) => {
    event.preventDefault();
    fail(event.error ?? new Error(event.message));
  });
  globalThis.addEventListener("unhandledrejection", (event: PromiseRejectionEvent) => {
    event.preventDefault();
    fail(event.reason);
  });
  try {
    await import(url);
  } catch (error) {
    const code = report(error, url, true);
    closeAll();
    return code;
  }
  outlivesMain = true;
  return ExitCode.OK;
}

function scriptUrl(script: string): string {
  if (/^(file|https?):/.test(script)) return script;
  let cwd: string;
  try {
    cwd = Deno.cwd();
  } catch (error) {
    throw readPermission(error);
  }
  return new URL(script, `file://${cwd.endsWith("/") ? cwd : `${cwd}/`}`).href;
}

function readPermission(cause: unknown): ProcwatchError {
  return new ProcwatchError(
    `loading a script needs read access; run it as: ${exactCommand()}`,
    ExitCode.NO_FFI,
    { cause },
  );
}

/** Prints what went wrong and returns the exit code for it. */
function report(error: unknown, url: string, duringImport: boolean): number {
  if (error instanceof FfiPermissionError) return reportError(error);
  if (error instanceof ProcwatchError) {
    const where = location(error);
    warn(`procwatch: ${error.message}${where ? ` (${where})` : ""}`);
    return error.exitCode;
  }
  const message = plain(error instanceof Error ? error.message : String(error));
  if (duringImport && error instanceof Error) {
    if (
      /^Requires read access/.test(message) ||
      error instanceof Deno.errors.NotCapable && /read access/.test(message)
    ) {
      warn(`procwatch: ${readPermission(error).message}`);
      return ExitCode.NO_FFI;
    }
    if (message.startsWith(`Module not found "${url}"`)) {
      warn(`procwatch: cannot load script ${displayPath(url)}: no such file`);
      return ExitCode.SCRIPT;
    }
    // Parse and resolution errors carry their location in the message.
    const embedded = /\n\s*at (\S+:\d+:\d+)\s*$/.exec(message);
    if (embedded) {
      const what = message.split("\n")[0].replace(/\.$/, "");
      warn(`procwatch: cannot load script: ${what} (${displayPath(embedded[1])})`);
      return ExitCode.SCRIPT;
    }
  }
  const name = error instanceof Error ? error.name : "uncaught value";
  warn(`procwatch: script error: ${name}: ${message.split("\n")[0]}`);
  const where = location(error);
  if (where) warn(`    at ${where}`);
  return ExitCode.SCRIPT;
}

/** The first stack frame outside procwatch (the user's line), else the first frame. */
function location(error: unknown): string | null {
  if (!(error instanceof Error) || error.stack === undefined) return null;
  const frames = [...plain(error.stack).matchAll(/\(?((?:file|https?):\/\/\S+?:\d+:\d+)\)?$/gm)]
    .map((match) => match[1]);
  const user = frames.find((frame) => !frame.startsWith(PROCWATCH_ROOT)) ?? frames[0];
  return user === undefined ? null : displayPath(user);
}

function displayPath(location: string): string {
  return location.startsWith("file://") ? decodeURIComponent(location.slice(7)) : location;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

function plain(text: string): string {
  return text.replace(ANSI, "");
}
