/**
 * The CLI's own handling of SIGINT, SIGTERM and SIGHUP: stop cleanly, then
 * exit with 128 + the signal number.
 *
 * A signal also starts the output's grace period (cli/output.ts): what a
 * stalled reader has not taken within it is dropped and counted, so the
 * process ends promptly however its stdout/stderr are read.
 *
 * @module
 */

import { interruptOutput } from "../lib/format/mod.ts";

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

/**
 * Calls `handler` with the signal number when one of the termination signals
 * arrives. Returns a function that unregisters the handler.
 */
export function onTerminationSignal(handler: (signal: number) => void): () => void {
  const listeners = Object.entries(SIGNALS).map(([name, number]) => {
    const listener = () => {
      interruptOutput();
      handler(number);
    };
    Deno.addSignalListener(name as Deno.Signal, listener);
    return [name as Deno.Signal, listener] as const;
  });
  return () => {
    for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
  };
}
