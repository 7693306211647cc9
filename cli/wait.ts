/**
 * `procwatch wait PID...`: wait for processes — children or not — to end, and
 * exit with the status a shell's `wait` would give.
 *
 * @module
 */

import type { Command } from "@commander-js/extra-typings";
import {
  BrokenPipeError,
  describeExit,
  finishOutput,
  isoTimeNs,
  stderr,
  stdout,
  wallClock,
  warn,
} from "../lib/format/mod.ts";
import {
  closeAllWatchers,
  type ExitInfo,
  exitNow,
  NoSuchProcessError,
  UsageError,
  type WaitArmed,
  waitForAll,
  waitForAny,
  type WaitMethod,
  WaitTimeoutError,
} from "../lib/wait/mod.ts";
import { ExitCode, WaitExitCode } from "./exit_codes.ts";
import { reportError } from "./errors.ts";
import { once, parsePid, parseSeconds, verbatim } from "./parse.ts";
import { onTerminationSignal } from "./signals.ts";

/**
 * The environment variable that picks the wait method when `--method` is not given.
 *
 * @example
 * ```sh
 * PROCWATCH_WAIT_METHOD=pidfd deno run --allow-ffi --allow-env=PROCWATCH_WAIT_METHOD cli.ts wait 1234
 * ```
 */
export const WAIT_METHOD_ENV = "PROCWATCH_WAIT_METHOD";

const METHODS = ["auto", "connector", "pidfd"] as const;
const CLI_URL = new URL("../cli.ts", import.meta.url).href;

/** Options of the `wait` command, as parsed. */
export interface WaitCommandOptions {
  /** `--any`: return at the first process to end. */
  any?: true;
  /** `--timeout`, in seconds. */
  timeout?: number;
  /** `-q`: nothing on stdout. */
  quiet?: true;
  /** `--json`: one JSON object per ended process. */
  json?: true;
  /** `--method`: auto, connector or pidfd. */
  method?: string;
  /** `-v`: the mechanism, the armed moment and run times on stderr. */
  verbose?: true;
}

/**
 * Builds the `wait` subcommand.
 *
 * @example
 * ```ts
 * import { Command } from "@commander-js/extra-typings";
 * import { waitCommand } from "./wait.ts";
 * const program = new Command("procwatch");
 * program.addCommand(waitCommand(Command));
 * ```
 *
 * `CommandClass` is commander's `Command`, given by the caller (cli/program.ts).
 */
export function waitCommand(CommandClass: typeof Command): Command {
  return new CommandClass("wait")
    .description(
      "wait for processes (any, not only children) to end; exit with the status a shell's wait gives",
    )
    // Appends in place: a copy per pid made 8,000 pids cost ~0.3 s (quadratic).
    .argument("<pid...>", "processes to wait for", (value: string, previous?: number[]) => {
      const pids = previous ?? [];
      pids.push(parsePid(value));
      return pids;
    })
    .option("-a, --any", "return when the first of the processes ends (default: all)")
    .option(
      "-t, --timeout <seconds>",
      "give up after this long: exit 124 (0: no limit, as with timeout(1))",
      once("--timeout", parseSeconds),
    )
    .option("-q, --quiet", "print nothing on stdout")
    .option("--json", "print one JSON object per ended process")
    .option(
      "--method <method>",
      `how to wait: auto (proc connector, else pidfd), connector, pidfd (default: $${WAIT_METHOD_ENV} or auto)`,
      once("--method", verbatim),
    )
    .option("-v, --verbose", "say on stderr which mechanism is used, and when it is armed")
    // Commander asks the environment (CLICOLOR_FORCE) whether to colour help;
    // with --allow-ffi only that would fail, and help needs no colour.
    .configureOutput({ getOutHasColors: () => false, getErrHasColors: () => false })
    .action(async (pids, options) => {
      await runWaitAndLeave(pids, options);
    }) as unknown as Command;
}

async function runWaitAndLeave(pids: number[], options: WaitCommandOptions): Promise<void> {
  Deno.exitCode = await runWait(pids, options);
  // Run as the CLI, leave at once: the shell is waiting for this exit, all
  // output was written synchronously and the listener is unregistered.
  if (runAsCli()) exitNow(Deno.exitCode);
}

/** Whether this is `procwatch` itself (not a script or test calling into it), able to `_exit`. */
function runAsCli(): boolean {
  return Deno.mainModule === CLI_URL &&
    Deno.permissions.querySync({ name: "ffi" }).state === "granted";
}

/** Flags a pre-parse takes as commander does (no value, each at most once). */
const QUICK_FLAGS: Record<string, "any" | "quiet" | "json" | "verbose"> = {
  "-a": "any",
  "--any": "any",
  "-q": "quiet",
  "--quiet": "quiet",
  "--json": "json",
  "-v": "verbose",
  "--verbose": "verbose",
};

/**
 * The pids and options of `wait`'s arguments (after `wait`) in their plain
 * spellings — pids, `-a`, `-q`, `--json`, `-v`, `-t SECONDS`, `--method M`,
 * each at most once — or `undefined` for anything else (`--help`, `-qv`,
 * `--timeout=5`, `--`, a bad value: commander alone answers those).
 *
 * @example
 * ```ts
 * import { quickWaitArguments } from "./wait.ts";
 * console.log(quickWaitArguments(["-t", "5", "1234"])); // { pids: [1234], options: { timeout: 5 } }
 * console.log(quickWaitArguments(["--help"])); // undefined
 * ```
 */
export function quickWaitArguments(
  args: readonly string[],
): { pids: number[]; options: WaitCommandOptions } | undefined {
  const pids: number[] = [];
  const options: WaitCommandOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (/^[1-9]\d{0,6}$/.test(arg)) {
      try {
        pids.push(parsePid(arg));
      } catch {
        return undefined;
      }
      continue;
    }
    const flag = QUICK_FLAGS[arg];
    if (flag !== undefined) {
      if (options[flag] !== undefined) return undefined;
      options[flag] = true;
      continue;
    }
    const value = args[i + 1];
    if (value === undefined || value.startsWith("-")) return undefined;
    if ((arg === "-t" || arg === "--timeout") && options.timeout === undefined) {
      try {
        options.timeout = parseSeconds(value);
      } catch {
        return undefined;
      }
    } else if (arg === "--method" && options.method === undefined) {
      options.method = value;
    } else {
      return undefined;
    }
    i++;
  }
  return pids.length > 0 ? { pids, options } : undefined;
}

/**
 * Runs `wait` without commander when {@linkcode quickWaitArguments} parses
 * `args` (the arguments after `wait`), and returns its exit code; resolves
 * to `undefined` when they need commander (help, other spellings, errors),
 * having done nothing. Commander needs Node's built-in modules
 * (node:child_process, node:fs), which Deno compiles on first import: ~50 ms
 * idle, several times that on a busy machine (measured with
 * performance.now() around the import), before the wait could even arm or
 * report. The two parsers agree on every argument list this one accepts
 * (tests/wait_cli_test.ts compares them over thousands of generated lists).
 * Run as the CLI, the process leaves with `_exit` once done.
 *
 * @example
 * ```ts
 * import { quickWait } from "./wait.ts";
 * console.log(await quickWait(["--help"])); // undefined: commander's turn
 * ```
 */
export async function quickWait(args: readonly string[]): Promise<number | undefined> {
  const parsed = quickWaitArguments(args);
  if (parsed === undefined) return undefined;
  let code: number;
  try {
    code = await runWait(parsed.pids, parsed.options);
  } catch (error) {
    // What commander's run reports for an error of the action (cli/program.ts).
    code = reportError(error);
  }
  if (runAsCli()) exitNow(code);
  return code;
}

/** Picks the method: `--method`, else `$PROCWATCH_WAIT_METHOD` (when readable), else auto. */
function chooseMethod(option: string | undefined): "auto" | WaitMethod {
  let value = option;
  let from = "--method";
  if (value === undefined) {
    from = `$${WAIT_METHOD_ENV}`;
    try {
      // Query first: reading the environment without permission would prompt.
      const state = Deno.permissions.querySync({ name: "env", variable: WAIT_METHOD_ENV }).state;
      if (state === "granted") value = Deno.env.get(WAIT_METHOD_ENV) || undefined;
    } catch {
      value = undefined;
    }
  }
  if (value === undefined) return "auto";
  if (!(METHODS as readonly string[]).includes(value)) {
    throw new UsageError(`invalid ${from} '${value}' (known: ${METHODS.join(", ")})`);
  }
  return value as "auto" | WaitMethod;
}

/**
 * Runs `wait` and returns the exit code (see README.md, "## wait").
 *
 * @example
 * ```ts
 * import { runWait } from "./wait.ts";
 * Deno.exitCode = await runWait([1234], { any: true, timeout: 10 });
 * ```
 */
export async function runWait(pids: number[], options: WaitCommandOptions): Promise<number> {
  const method = chooseMethod(options.method);
  const out = stdout();
  let stdoutOpen = !options.quiet;
  let armedWith: WaitArmed | undefined;
  const controller = new AbortController();
  let interrupted: number | undefined;
  const stopSignals = onTerminationSignal((signal) => {
    interrupted ??= 128 + signal;
    controller.abort();
  });

  const onArmed = (armed: WaitArmed) => {
    armedWith = armed;
    if (!options.verbose) return;
    const how = armed.method === "connector"
      ? "the proc connector (exit events carry the status)"
      : `pidfd (the status is known only once the process is reaped, on Linux ≥ 6.15)${
        armed.fallbackReason ? `; not the proc connector: ${armed.fallbackReason}` : ""
      }`;
    warn(`procwatch: armed: waiting for ${armed.pids.join(", ")} with ${how}`);
    const filter = armed.socketFilter;
    if (filter?.pids) {
      warn(
        `procwatch: the kernel drops other processes' events (BPF socket filter, ${filter.instructions} instructions)`,
      );
    } else if (filter?.pidsInProcwatch) {
      warn(`procwatch: pids filtered in procwatch, not in the kernel: ${filter.pidsInProcwatch}`);
    }
  };
  // Lines of exits reported together (8,000 pids killed at once) go out in
  // one write per stream, after the batch: a write per line made the last
  // exit wait behind thousands of them. The last line is written by
  // finishOutput() below, at once.
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  const flushLines = () => {
    flushTimer = undefined;
    if (stdoutOpen) {
      try {
        out.flush();
      } catch (error) {
        if (!(error instanceof BrokenPipeError)) throw error;
        stdoutOpen = false; // The reader left; the exit status still matters.
      }
    }
    try {
      stderr().flush();
    } catch {
      // Nowhere left to report to.
    }
  };
  // The CLI leaves the moment the last awaited exit is written: the
  // settling of the wait's promises, timers, listeners and output queues
  // took ~2 ms more here (each of those functions runs for the first time
  // then), while the shell waits.
  const leaveAtOnce = runAsCli();
  let toReport = options.any ? 1 : new Set(pids).size;
  const leaveIfDone = (status: number) => {
    if (!leaveAtOnce || --toReport > 0) return;
    flushLines();
    // Only when nothing is left to write; else the usual path drains it.
    if (out.queued > 0 && stdoutOpen || stderr().queued > 0) return;
    closeAllWatchers(); // unregisters from the kernel before the process goes
    exitNow(status);
  };
  const onExit = (info: ExitInfo) => {
    if (stdoutOpen) out.line(options.json ? exitToJson(info) : exitLine(info));
    if (!info.statusKnown) stderr().line(`procwatch: note: ${unknownNote(info, armedWith)}`);
    if (options.verbose) {
      const ran = info.runtimeMs === null
        ? ""
        : ` after running ${(info.runtimeMs / 1000).toFixed(2)} s`;
      stderr().line(`procwatch: ${info.pid} ended${ran} (learnt from: ${info.source})`);
    }
    leaveIfDone(info.shellStatus);
    flushTimer ??= setTimeout(flushLines, 0);
  };

  try {
    const waitOptions = {
      method,
      // `--timeout 0` is no limit, as with timeout(1).
      timeout: options.timeout === undefined || options.timeout === 0
        ? undefined
        : options.timeout * 1000,
      signal: controller.signal,
      handleSignals: false,
      onArmed,
      onExit,
    };
    const info = options.any
      ? await waitForAny(pids, waitOptions)
      : (await waitForAll(pids, waitOptions)).at(-1);
    return info?.shellStatus ?? WaitExitCode.UNKNOWN;
  } catch (error) {
    if (interrupted !== undefined) return interrupted;
    if (error instanceof NoSuchProcessError) {
      warn(`procwatch: ${error.message}`);
      return WaitExitCode.NO_SUCH_PROCESS;
    }
    if (error instanceof WaitTimeoutError) {
      warn(`procwatch: ${error.message}`);
      return WaitExitCode.TIMEOUT;
    }
    if (error instanceof UsageError) throw error;
    // A missing Deno permission is exit 3, as for every subcommand; any other
    // failure to wait is 125 ("status unknown"), as for timeout(1).
    const code = reportError(error);
    return code === ExitCode.NO_FFI ? code : WaitExitCode.UNKNOWN;
  } finally {
    // Output never blocks (a stalled reader cannot delay SIGTERM); what is
    // queued is written now, unless a signal's grace period ends first.
    clearTimeout(flushTimer);
    flushTimer = undefined;
    await finishOutput();
    stopSignals();
  }
}

/**
 * One line for an ended process: `1234 exited with code 3`,
 * `1234 killed by SIGTERM (core dumped)`, `1234 ended (exit status unknown)`.
 *
 * @example
 * ```ts
 * import type { ExitInfo } from "@procwatch/procwatch/wait";
 * import { exitLine } from "./wait.ts";
 * const info: ExitInfo = {
 *   pid: 1234,
 *   statusKnown: true,
 *   status: 768,
 *   exitCode: 3,
 *   signal: null,
 *   signalNumber: null,
 *   coreDumped: false,
 *   shellStatus: 3,
 *   timestampNs: 1_000_000n,
 *   time: new Date(0),
 *   runtimeMs: 1520.4,
 *   source: "event",
 *   method: "connector",
 * };
 * console.log(exitLine(info)); // "1234 exited with code 3"
 * ```
 */
export function exitLine(info: ExitInfo): string {
  return `${info.pid} ${info.statusKnown ? describeExit(info) : "ended (exit status unknown)"}`;
}

/**
 * One JSON line for an ended process; `timestampNs` as a decimal string and
 * `time` as ISO 8601 with nanoseconds, both `null` when unknown.
 *
 * @example
 * ```ts
 * import type { ExitInfo } from "@procwatch/procwatch/wait";
 * import { exitToJson } from "./wait.ts";
 * const info: ExitInfo = {
 *   pid: 1234,
 *   statusKnown: true,
 *   status: 768,
 *   exitCode: 3,
 *   signal: null,
 *   signalNumber: null,
 *   coreDumped: false,
 *   shellStatus: 3,
 *   timestampNs: 1_000_000n,
 *   time: new Date(0),
 *   runtimeMs: 1520.4,
 *   source: "event",
 *   method: "connector",
 * };
 * console.log(exitToJson(info)); // {"pid":1234,"statusKnown":true,...}
 * ```
 */
export function exitToJson(info: ExitInfo): string {
  return JSON.stringify({
    ...info,
    timestampNs: info.timestampNs === null ? null : String(info.timestampNs),
    time: info.timestampNs === null
      ? null
      : isoTimeNs(info.timestampNs, wallClock.offsetAt(info.timestampNs)),
  });
}

function unknownNote(info: ExitInfo, armed: WaitArmed | undefined): string {
  if (info.source === "pidfd" || armed?.method === "pidfd") {
    return `exit status of ${info.pid} unknown: waited with pidfd (${
      armed?.fallbackReason ?? "proc connector not used"
    }), and the kernel kept no status (before Linux 6.15, or not reaped by its parent within 2 s); exit code ${WaitExitCode.UNKNOWN}`;
  }
  return `exit status of ${info.pid} unknown: its exit event did not reach procwatch (it had already ended and its /proc status is not readable by this user, or events were lost); exit code ${WaitExitCode.UNKNOWN}`;
}
