/**
 * React to new processes whose name matches a regular expression (kmonitor's
 * unit_test idea): print each one as it starts, and optionally signal it.
 *
 * ```sh
 * sudo deno run --allow-ffi scripts/new_processes.ts '^(nc|ncat)$'
 * sudo deno run --allow-ffi scripts/new_processes.ts '^sleep$' --signal TERM --count 1
 * ```
 *
 * Every argument is checked before it starts listening: a bad regex, signal
 * or count is one line and exit 2, never a crash at the first match.
 *
 * @module
 */

import { checkSignal, kill, ProcwatchError, watch } from "@procwatch/procwatch";
import { commandLine } from "@procwatch/procwatch/proc";
import { exitCodeFor } from "./_exit_code.ts";

const USAGE = "usage: new_processes.ts REGEX [--signal SIG] [--count N]";

/** Parses the arguments; a message for the user when they are wrong. */
function parseArgs(args: readonly string[]): { regex: RegExp; signal?: string; count: number } {
  const [pattern, ...rest] = args;
  if (pattern === undefined) throw new Error("missing REGEX");
  let regex: RegExp;
  try {
    regex = new RegExp(pattern);
  } catch (error) {
    throw new Error(`invalid regular expression '${pattern}': ${(error as Error).message}`);
  }
  let signal: string | undefined;
  let count = Infinity;
  for (let i = 0; i < rest.length; i += 2) {
    const [option, value] = [rest[i], rest[i + 1]];
    if (value === undefined) throw new Error(`${option} needs a value`);
    if (option === "--signal") {
      checkSignal(value); // Unknown names fail here, not at the first match.
      signal = value;
    } else if (option === "--count") {
      count = Number(value);
      if (!Number.isInteger(count) || count < 1) throw new Error(`invalid count '${value}'`);
    } else throw new Error(`unknown option '${option}'`);
  }
  return { regex, signal, count };
}

let options: ReturnType<typeof parseArgs>;
try {
  options = parseArgs(Deno.args);
} catch (error) {
  console.error(`new_processes: ${(error as Error).message} (${USAGE})`);
  Deno.exit(2);
}
const { regex, signal } = options;
let { count } = options;

try {
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
} catch (error) {
  // No --allow-ffi, not allowed to listen, a network namespace: one line, procwatch's code.
  if (!(error instanceof ProcwatchError)) throw error;
  console.error(`new_processes: ${error.message}`);
  Deno.exit(exitCodeFor(error));
}
