/**
 * Follow a process and all its descendants — those running now and those it
 * starts later (kmonitor's monitor_pid) — printing every fork, exec and exit
 * indented under its parent. Ends when the process itself exits.
 *
 * ```sh
 * sudo deno run --allow-ffi scripts/monitor_pid.ts PID
 * ```
 *
 * @module
 */

import { ProcwatchError, watch } from "@procwatch/procwatch";
import { TreeFormatter } from "@procwatch/procwatch/format";
import { exitCodeFor } from "./_exit_code.ts";

const pid = Number(Deno.args[0]);
if (!Number.isInteger(pid) || pid <= 0) {
  console.error("usage: monitor_pid.ts PID");
  Deno.exit(2);
}

try {
  // `tree` selects the sub-tree; `context` names each process (command line, duration).
  const watcher = watch({ tree: pid, events: ["fork", "exec", "exit"], context: true });
  await watcher.ready;
  console.error(`monitoring ${pid} and its descendants`);

  // The table knows the parent of processes that were running before we started.
  const tree = new TreeFormatter({
    root: pid,
    parentOf: (child) => watcher.processTable?.get(child)?.ppid,
  });
  for await (const event of watcher) {
    const line = tree.line(event);
    if (line !== null) console.log(line);
    if (event.type === "exit" && event.pid === pid && event.tid === pid) break;
  }
} catch (error) {
  // Bad pid, no such process, not root: one line, and procwatch's exit code.
  if (!(error instanceof ProcwatchError)) throw error;
  console.error(`monitor_pid: ${error.message}`);
  Deno.exit(exitCodeFor(error));
}
