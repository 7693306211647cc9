/**
 * The benchmark's load generator: no native build, just FFI `clone` from
 * Workers (see tests/support/ffi/clone.ts). Two workers make ~35K processes/s on a 2-core
 * VM, i.e. ~70K fork+exit events/s.
 *
 * @module
 */

import type { LoadReply, LoadRequest } from "./loadgen_worker.ts";

/**
 * What a storm made.
 *
 * @example
 * ```ts ignore
 * import { runStorm, type StormResult } from "./loadgen.ts";
 * const result: StormResult = await runStorm({ mode: "exit", workers: 2, durationMs: 500 });
 * console.log(result.events === result.processes * 2);
 * ```
 */
export interface StormResult {
  mode: LoadRequest["mode"];
  workers: number;
  processes: number;
  /** Events the kernel generated for them: fork + exit (+ exec). */
  events: number;
  seconds: number;
  /** Processes per second over the whole storm. */
  processesPerSecond: number;
}

/**
 * Events the proc connector sends per process made in each mode.
 *
 * @example
 * ```ts
 * import { EVENTS_PER_PROCESS } from "./loadgen.ts";
 * console.log(EVENTS_PER_PROCESS.exec); // 3: fork, exec, exit
 * ```
 */
export const EVENTS_PER_PROCESS: Record<LoadRequest["mode"], number> = { exit: 2, exec: 3 };

/**
 * Runs a storm on `workers` Workers in parallel; resolves when all are done.
 *
 * @example
 * ```ts ignore
 * import { runStorm } from "./loadgen.ts";
 * const result = await runStorm({ mode: "exit", workers: 2, durationMs: 1000 });
 * console.log(`${result.processesPerSecond.toFixed(0)} processes/s`);
 * ```
 */
export async function runStorm(options: {
  mode: LoadRequest["mode"];
  workers: number;
  durationMs: number;
  maxProcesses?: number;
  program?: LoadRequest["program"];
}): Promise<StormResult> {
  const workers = Array.from(
    { length: options.workers },
    () => new Worker(new URL("./loadgen_worker.ts", import.meta.url), { type: "module" }),
  );
  // Let the workers load their modules before the clock starts.
  await Promise.all(workers.map((worker) => warmUp(worker)));
  const perWorker = Math.ceil((options.maxProcesses ?? Number.MAX_SAFE_INTEGER) / options.workers);
  const started = performance.now();
  try {
    const replies = await Promise.all(workers.map((worker) =>
      ask(worker, {
        mode: options.mode,
        durationMs: options.durationMs,
        maxProcesses: perWorker,
        program: options.program,
      })
    ));
    const seconds = (performance.now() - started) / 1000;
    const failed = replies.find((reply) => reply.error !== undefined);
    if (failed) throw new Error(`load worker failed: ${failed.error}`);
    const processes = replies.reduce((sum, reply) => sum + reply.processes, 0);
    return {
      mode: options.mode,
      workers: options.workers,
      processes,
      events: processes * EVENTS_PER_PROCESS[options.mode],
      seconds,
      processesPerSecond: processes / seconds,
    };
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

function ask(worker: Worker, request: LoadRequest): Promise<LoadReply> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<LoadReply>) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
    worker.postMessage(request);
  });
}

async function warmUp(worker: Worker): Promise<void> {
  const reply = await ask(worker, { mode: "exit", durationMs: 0, maxProcesses: 1 });
  if (reply.error) throw new Error(`load worker failed: ${reply.error}`);
}
