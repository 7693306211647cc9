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
 * The command tree is in cli/program.ts, and commander parses every command.
 * A `wait` in plain spellings is armed first, while commander loads (its Node
 * built-in modules cost ~50 ms idle): cli/wait.ts's EarlyWait holds its lines
 * and its exit until commander has parsed the same arguments.
 *
 * An earlier try that parsed a plain `wait` without commander returned ~15 ms
 * later after its process's death (22 vs 7 ms median). The cause: Deno loads
 * its timer module on a process's first setTimeout/setInterval (6–13 ms idle,
 * more when busy), and without commander (whose Node modules load it) that
 * first timer was the wait's liveness check, set right after "armed", or the
 * batching of the first exit's line. The wait now sets its first timer before
 * it says it is armed (lib/wait/wait.ts).
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
  const early = args[0] === "wait"
    ? (await import("./cli/wait.ts")).startEarlyWait(args.slice(1))
    : undefined;
  const program = await import("./cli/program.ts");
  try {
    return await program.main(args, early);
  } finally {
    await early?.cancel(); // Nothing when commander took it over.
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  // A script started by `run` may still have work queued; the process ends when it is done.
  const { scriptOutlivesMain } = await import("./cli/run.ts");
  if (!scriptOutlivesMain()) Deno.exit(code);
}
