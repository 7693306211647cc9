/**
 * Example watch script: prints every process that exits with a failure
 * (non-zero status or a signal), with its parent, until interrupted.
 *
 * ```sh
 * sudo deno run --allow-ffi --allow-read cli.ts run scripts/failed_exits.ts [--core-only]
 * ```
 *
 * @module
 */

import { watch } from "../mod.ts";

const coreOnly = Deno.args.includes("--core-only");
using watcher = watch({ events: ["exit"], failedOnly: true });
for await (const event of watcher) {
  if (event.type !== "exit" || (coreOnly && !event.coreDumped)) continue;
  const how = event.signal === null ? `exit ${event.exitCode}` : `killed by ${event.signal}`;
  console.log(`${event.pid} (parent ${event.parentPid ?? "?"}) ${how}`);
}
