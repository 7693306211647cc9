/**
 * Helpers for tests that need the real kernel (root + proc connector).
 *
 * Without root they are skipped with a reason, unless PROCWATCH_REQUIRE_KERNEL=1
 * (set by .ci/run): then they fail, so CI never passes without proving
 * anything against the kernel.
 *
 * @module
 */

import { effectiveUid } from "../../ffi/process.ts";
import type { ProcEvent } from "../../lib/events/events.ts";
import { type ProcWatcher, watch, type WatchOptions } from "../../lib/watch/mod.ts";

const isRoot = effectiveUid() === 0;
const required = Deno.env.get("PROCWATCH_REQUIRE_KERNEL") === "1";
let warned = false;

/** Registers a test that needs root and the proc connector. */
export function kernelTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (!isRoot && !required && !warned) {
    warned = true;
    console.warn(
      "SKIP: real-kernel tests need root (proc connector); run as root, or set PROCWATCH_REQUIRE_KERNEL=1 to make this a failure",
    );
  }
  Deno.test({
    name: `[kernel] ${name}`,
    ignore: !isRoot && !required,
    fn: async (t) => {
      if (!isRoot) {
        throw new Error(
          "real-kernel test needs root, and PROCWATCH_REQUIRE_KERNEL=1 forbids skipping",
        );
      }
      await fn(t);
    },
  });
}

/** Opens a watcher that sees everything, threads included, and never exits the test process on signals. */
export function watchAll(options: WatchOptions = {}): ProcWatcher {
  return watch({ threads: true, handleSignals: false, ...options });
}

/**
 * Collects events from `watcher` until `done` says so or `timeoutMs` passes
 * (then it throws with what it saw).
 */
export async function collectUntil(
  watcher: ProcWatcher,
  done: (event: ProcEvent, seen: ProcEvent[]) => boolean,
  timeoutMs = 10_000,
): Promise<ProcEvent[]> {
  const seen: ProcEvent[] = [];
  const iterator = watcher[Symbol.asyncIterator]();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms; saw ${seen.length} events`)),
      timeoutMs,
    );
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), timeout]);
      if (next.done) return seen;
      seen.push(next.value);
      if (done(next.value, seen)) return seen;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The events of a process tree: the root, and every process forked from it. */
export class ProcessTree {
  readonly pids: Set<number>;
  constructor(root: number) {
    this.pids = new Set([root]);
  }
  /** Whether `event` belongs to the tree; follows forks as they come. */
  includes(event: ProcEvent): boolean {
    if (event.type === "lost") return false;
    if (event.type === "fork") {
      if (this.pids.has(event.parentPid)) {
        this.pids.add(event.childPid);
        return true;
      }
      return this.pids.has(event.childPid);
    }
    return this.pids.has(event.pid);
  }
}

/**
 * Runs a command while `watcher` listens, and returns the events of its
 * process tree up to the exit of the command's own process.
 */
export async function eventsOf(
  watcher: ProcWatcher,
  command: string,
  args: string[],
  options: { cwd?: string; afterSpawn?: (pid: number) => Promise<void> | void } = {},
): Promise<{ pid: number; events: ProcEvent[] }> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const tree = new ProcessTree(child.pid);
  const collecting = collectUntil(
    watcher,
    (event) => event.type === "exit" && event.pid === child.pid && event.tid === child.pid,
  );
  await options.afterSpawn?.(child.pid);
  const seen = await collecting;
  await child.status;
  return { pid: child.pid, events: seen.filter((event) => tree.includes(event)) };
}
