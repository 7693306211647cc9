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
import { warn } from "../lib/format/mod.ts";
import { closeAllWatchers, FfiPermissionError, ProcwatchError } from "../mod.ts";
import { ExitCode, exitCodeOf } from "./exit_codes.ts";
import { exactCommand, reportError } from "./errors.ts";

/**
 * Builds the `run` subcommand.
 *
 * @example
 * ```ts
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
    .option(
      "--check",
      "type-check the script and what it imports first, as `deno run --check` (starts `deno check`: needs --allow-run); exit 8 on a type error",
    )
    .passThroughOptions()
    .allowUnknownOption()
    .action(async (script, args, options) => {
      Deno.exitCode = await runScript(script, args, { check: options.check ?? false });
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
 * ```ts
 * import { scriptOutlivesMain } from "./run.ts";
 * if (!scriptOutlivesMain()) Deno.exit(0);
 * ```
 */
export function scriptOutlivesMain(): boolean {
  return outlivesMain;
}

/**
 * Options of {@linkcode runScript}.
 *
 * @example
 * ```ts
 * import { runScript, type RunOptions } from "./run.ts";
 * const options: RunOptions = { check: true };
 * Deno.exitCode = await runScript("scripts/failures.ts", [], options);
 * ```
 */
export interface RunOptions {
  /** Type-check the script first (`deno check`), as `deno run --check` would. */
  check?: boolean;
}

/**
 * Loads and runs `script` with `args` as its `Deno.args`. With `check`, it
 * is type-checked first and not run when that fails. Returns the exit
 * code once its module has been evaluated: 0 (see
 * {@linkcode scriptOutlivesMain}), or {@linkcode ExitCode.SCRIPT} when it
 * fails to load or throws (a {@linkcode ProcwatchError} it lets escape keeps
 * its own exit code). An error thrown later, in a callback, or a rejection
 * nobody handles, is reported the same way and ends the process at once.
 * Every watcher the script opened is closed (unregistered) on failure.
 *
 * @example
 * ```ts
 * import { runScript } from "./run.ts";
 * Deno.exitCode = await runScript("scripts/failures.ts", []);
 * ```
 */
export async function runScript(
  script: string,
  args: string[],
  options: RunOptions = {},
): Promise<number> {
  const url = scriptUrl(script);
  const unloadable = checkPath(url);
  if (unloadable !== null) {
    warn(`procwatch: cannot load script ${displayPath(url)}: ${unloadable}`);
    return ExitCode.SCRIPT;
  }
  if (options.check) {
    const failed = await typeCheck(url);
    if (failed !== null) return failed;
  }
  try {
    Object.defineProperty(Deno, "args", { value: Object.freeze([...args]), configurable: true });
  } catch {
    // The script sees the CLI's arguments instead; nothing else depends on it.
  }
  currentScript = url;
  const fail = (error: unknown) => {
    const code = report(error, url, false);
    closeAllWatchers();
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
    closeAllWatchers();
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
    "DENO_PERMISSION",
    { cause },
  );
}

/** Prints what went wrong and returns the exit code for it. */
function report(error: unknown, url: string, duringImport: boolean): number {
  if (error instanceof FfiPermissionError) return reportError(error);
  if (error instanceof ProcwatchError && error.code !== "SYSTEM") {
    const where = location(error);
    warn(`procwatch: ${error.message}${where ? ` (${where})` : ""}`);
    return exitCodeOf(error.code);
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

/**
 * The user's line an error came from: the innermost stack frame in the user's
 * code — the script, or a module of the user's it imports — never one in
 * procwatch's own library and CLI, nor in a package (commander, npm and jsr
 * caches). `null` when no frame is the user's: a wrong location is worse
 * than none.
 */
function location(error: unknown): string | null {
  if (!(error instanceof Error) || error.stack === undefined) return null;
  const frames = [...plain(error.stack).matchAll(/\(?((?:file|https?):\/\/\S+?:\d+:\d+)\)?$/gm)]
    .map((match) => match[1]);
  const user = frames.find((frame) => frame.startsWith(`${currentScript}:`)) ??
    frames.find(isUserFrame);
  return user === undefined ? null : displayPath(user);
}

/** The URL of the script `run` loaded (set by {@linkcode runScript}). */
let currentScript = "";

/** procwatch's own code: the library, the FFI layer and the CLI (the example scripts are users'). */
const PROCWATCH_CODE = ["lib/", "ffi/", "cli/", "mod.ts:", "cli.ts:"].map((path) =>
  PROCWATCH_ROOT + path
);

function isUserFrame(frame: string): boolean {
  if (PROCWATCH_CODE.some((prefix) => frame.startsWith(prefix))) return false;
  // Packages: Deno's npm cache, node_modules, jsr and other remote modules.
  return !/\/node_modules\/|\/deno\/npm\/|^https?:/.test(frame);
}

/**
 * Why the script at `url` cannot be loaded before trying (`null`: try it):
 * a directory gives a confusing resolver error deep inside the loader.
 */
function checkPath(url: string): string | null {
  if (!url.startsWith("file:")) return null;
  try {
    const info = Deno.statSync(new URL(url));
    return info.isDirectory ? "it is a directory, give the script file (.ts or .js) in it" : null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "no such file";
    // No read permission: the import reports it the same way as before.
    return null;
  }
}

/**
 * `--check`: runs `deno check` on the script, as `deno run --check` would
 * before running it. Returns `null` when it type-checks, else prints one
 * line per type error (`file:line:col: TS2322 message`) and a summary, and
 * returns the exit code: 8, or 3 when `--allow-run` is missing.
 */
async function typeCheck(url: string): Promise<number | null> {
  const deno = Deno.execPath();
  // Ask first: a missing permission would otherwise prompt on a terminal.
  if (Deno.permissions.querySync({ name: "run", command: deno }).state !== "granted") {
    warn(
      `procwatch: run --check starts \`deno check\`, which needs --allow-run; run it as: ${exactCommand()}`,
    );
    return ExitCode.NO_FFI;
  }
  const path = displayPath(url);
  const output = await new Deno.Command(deno, {
    args: ["check", "--quiet", url],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).output();
  if (output.success) return null;
  const text = plain(new TextDecoder().decode(output.stderr));
  const errors = typeErrors(text);
  if (errors.length === 0) {
    // Not a type error (say, a missing file or a syntax error): deno's own words.
    const first = text.split("\n").map((line) => line.trim()).find((line) => line !== "");
    warn(`procwatch: cannot check script ${path}: ${first ?? `deno check exited ${output.code}`}`);
    return ExitCode.SCRIPT;
  }
  for (const error of errors) warn(`${error.where}: ${error.code} ${error.message}`);
  warn(
    `procwatch: script ${path} does not type-check (${errors.length} error${
      errors.length === 1 ? "" : "s"
    }); not run`,
  );
  return ExitCode.SCRIPT;
}

/**
 * The type errors in `deno check`'s output: each is a block starting with
 * `TS2322 [ERROR]: message` and ending with `    at file:///path:line:col`.
 */
function typeErrors(text: string): { code: string; message: string; where: string }[] {
  const found = [];
  for (const block of text.split(/\n(?=TS\d+ )/)) {
    const head = /^(TS\d+) \[ERROR\]: (.*)$/m.exec(block);
    const at = /^\s+at ((?:file|https?):\/\/\S+:\d+:\d+)\s*$/m.exec(block);
    if (head && at) found.push({ code: head[1], message: head[2], where: displayPath(at[1]) });
  }
  return found;
}

function displayPath(location: string): string {
  return location.startsWith("file://") ? decodeURIComponent(location.slice(7)) : location;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

function plain(text: string): string {
  return text.replace(ANSI, "");
}
