/**
 * React to new processes whose name matches a regular expression (kmonitor's
 * unit_test idea): print each one as it starts, and optionally signal it.
 *
 * ```sh
 * sudo deno run --allow-ffi scripts/new_processes.ts '^(nc|ncat)$'
 * sudo deno run --allow-ffi scripts/new_processes.ts '^sleep$' --signal TERM --count 1
 * ```
 *
 * @module
 */

import { commandLine, kill, watch } from "../mod.ts";

const [pattern, ...rest] = Deno.args;
let signal: string | undefined;
let count = Infinity;
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] === "--signal") signal = rest[i + 1];
  else if (rest[i] === "--count") count = Number(rest[i + 1]);
  else count = NaN; // unknown option: usage below
}
let regex: RegExp;
try {
  regex = new RegExp(pattern ?? "");
  if (pattern === undefined || !(count > 0)) throw new Error("missing pattern or bad count");
} catch (error) {
  console.error(`usage: new_processes.ts REGEX [--signal SIG] [--count N] (${error})`);
  Deno.exit(2);
}

// A new program shows as an exec event; `context` reads its name and arguments
// at once, so even a process that ends within microseconds is named.
const watcher = watch({ events: ["exec"], context: true });
await watcher.ready;
console.error(`waiting for processes named /${regex.source}/`);
for await (const event of watcher) {
  if (event.type !== "exec" || !regex.test(event.process?.comm ?? "")) continue;
  const info = event.process!;
  console.log(`${event.pid} ${info.comm} ${commandLine(info.cmdline ?? [])} (user ${info.user})`);
  if (signal !== undefined) {
    console.log(`${event.pid} ${kill(event.pid, signal) ? `sent ${signal}` : "already gone"}`);
  }
  if (--count === 0) break;
}
