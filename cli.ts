/**
 * The procwatch command line.
 *
 * ```sh
 * deno task install            # puts `procwatch` on PATH (deno install -g, see deno.json)
 * procwatch watch [--json] [-e exec,exit] [-p PID] ...
 * procwatch wait [--any] [--timeout SECONDS] PID...
 * deno run --allow-ffi cli.ts watch ...   # the same without installing
 * ```
 *
 * The command tree is in cli/program.ts, and commander parses every command
 * but a `wait` in plain spellings (pids, `-a`, `-q`, `--json`, `-v`, `-t S`,
 * `--method M`): cli/wait.ts's quickWait runs that one without loading
 * commander, whose Node built-in modules cost ~50 ms idle, more when busy,
 * before `wait` could arm or report. Both parsers agree on every argument
 * list the quick one accepts (tests/wait_cli_test.ts).
 *
 * An earlier try without commander returned ~15 ms later after its process's
 * death: Deno loads its timer module (node:timers) on a process's first
 * setTimeout/setInterval (5–13 ms idle, more when busy), and that first timer
 * was the wait's liveness check or the batching of the first exit's line. The
 * wait now sets a timer once armed, before it reads any event
 * (lib/wait/wait.ts).
 *
 * @module
 */

/**
 * Runs the CLI with `args` and returns the exit code.
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * Deno.exitCode = await main(["wait", "1234"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "wait") {
    const code = await (await import("./cli/wait.ts")).quickWait(args.slice(1));
    if (code !== undefined) return code;
  }
  const program = await import("./cli/program.ts");
  return await program.main(args);
}

if (import.meta.main) {
  const code = await main(Deno.args);
  // A script started by `run` may still have work queued; the process ends when it is done.
  const { scriptOutlivesMain } = await import("./cli/run.ts");
  if (!scriptOutlivesMain()) Deno.exit(code);
}
