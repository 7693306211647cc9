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
 * The command tree is in cli/program.ts. A `wait` that parsed its plain
 * arguments without commander (~55 ms of module loading less) was measured
 * returning ~15 ms later after its process's death (22 vs 7 ms median, the
 * same bench run; cause not found), so every command goes through commander.
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
  const program = await import("./cli/program.ts");
  return await program.main(args);
}

if (import.meta.main) {
  const code = await main(Deno.args);
  // A script started by `run` may still have work queued; the process ends when it is done.
  const { scriptOutlivesMain } = await import("./cli/run.ts");
  if (!scriptOutlivesMain()) Deno.exit(code);
}
