/**
 * Run as a child Deno: makes N processes that exit at once with CODE and
 * prints "count firstPid lastPid".
 *
 * ```sh
 * deno run --allow-ffi tests/support/clone_storm.ts 1000 3
 * ```
 *
 * @module
 */

import { spawnExitingPids } from "./ffi/clone.ts";

if (import.meta.main) {
  const pids = spawnExitingPids(Number(Deno.args[0] ?? "1000"), Number(Deno.args[1] ?? "0"));
  console.log(`${pids.length} ${pids[0] ?? 0} ${pids.at(-1) ?? 0}`);
}
