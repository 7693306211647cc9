/**
 * One load thread of the benchmark's generator, run as a Worker: makes
 * processes back to back with the vfork-style clone (or posix_spawn for the
 * exec storm) until a deadline or a count, then reports how many it made.
 *
 * @module
 */

import {
  prepareProgram,
  reap,
  setStormExitSignal,
  spawnExitingMany,
} from "../tests/support/ffi/clone.ts";
import { STORM_EXIT_CODE } from "./ours.ts";

/**
 * What the generator asks of a load thread.
 *
 * @example
 * ```ts
 * import type { LoadRequest } from "./loadgen_worker.ts";
 * const request: LoadRequest = { mode: "exit", durationMs: 1000, maxProcesses: 10_000 };
 * ```
 */
export interface LoadRequest {
  /** `exit`: clone + _exit; `exec`: posix_spawn of `program` + exit. */
  mode: "exit" | "exec";
  /** Stop after this many milliseconds... */
  durationMs: number;
  /** ...or after this many processes, whichever comes first. */
  maxProcesses: number;
  /** For `exec`: the program and its argv. */
  program?: { path: string; argv: string[] };
}

/**
 * What a load thread reports.
 *
 * @example
 * ```ts
 * import type { LoadReply } from "./loadgen_worker.ts";
 * const reply: LoadReply = { processes: 20_000, elapsedMs: 1000 };
 * ```
 */
export interface LoadReply {
  processes: number;
  elapsedMs: number;
  error?: string;
}

interface WorkerScope {
  onmessage: ((event: MessageEvent<LoadRequest>) => void) | null;
  postMessage(message: LoadReply): void;
}

const scope = globalThis as unknown as WorkerScope;
// No SIGCHLD per child: a signal delivery per process costs more than the clone.
setStormExitSignal(0);

scope.onmessage = (message) => {
  const request = message.data;
  const started = performance.now();
  const deadline = started + request.durationMs;
  let processes = 0;
  try {
    if (request.mode === "exit") {
      // In slices, so a long run still checks the clock often.
      while (processes < request.maxProcesses && performance.now() < deadline) {
        processes += spawnExitingMany(
          Math.min(4096, request.maxProcesses - processes),
          deadline,
          STORM_EXIT_CODE,
        );
      }
    } else {
      const program = request.program ?? { path: "/bin/true", argv: ["true"] };
      const prepared = prepareProgram(program.path, program.argv);
      while (processes < request.maxProcesses && performance.now() < deadline) {
        reap(prepared.spawn());
        processes++;
      }
    }
    scope.postMessage({ processes, elapsedMs: performance.now() - started });
  } catch (error) {
    scope.postMessage({ processes, elapsedMs: performance.now() - started, error: String(error) });
  }
};
