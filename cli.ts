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
 * Modules are loaded on demand: a plain `procwatch wait PID...` is timed from
 * its start (a script waits on it), and the option parser with every other
 * command costs ~55 ms of module loading more than `wait` needs, so `wait`
 * with options it parses alike ({@linkcode quickWait}) skips them; anything else
 * (help, errors, other commands) goes through the whole command tree of
 * cli/program.ts.
 *
 * @module
 */

/**
 * Runs the CLI with `args` and returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * Deno.exitCode = await main(["wait", "1234"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "wait") {
    const { quickWait } = await import("./cli/wait.ts");
    const code = await quickWait(args.slice(1));
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
