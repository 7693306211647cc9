/**
 * Waiting for any process — a child or not — to end, and learning how it
 * ended: the `"./wait"` export of the package (also re-exported by `"."`).
 * A small graph on purpose: `procwatch wait` loads only this.
 *
 * May import: ground/, ffi/, lib/events/, lib/connector/, lib/process/, lib/watch/.
 *
 * @example
 * ```ts
 * import { waitForExit } from "@procwatch/procwatch/wait";
 *
 * const info = await waitForExit(1234, { timeout: 60_000 });
 * console.log(`${info.pid}: ${info.signal ?? `exit code ${info.exitCode}`}`);
 * ```
 *
 * @module
 */

export {
  type ExitInfo,
  type ExitSource,
  UNKNOWN_SHELL_STATUS,
  type WaitArmed,
  waitForAll,
  waitForAny,
  waitForExit,
  type WaitMethod,
  type WaitOptions,
} from "./wait.ts";
export { checkSignal, kill } from "./kill.ts";
export { decodeWaitStatus, shellStatus, signalName, type WaitStatus } from "../events/signals.ts";
export {
  NoSuchProcessError,
  ProcwatchError,
  UsageError,
  WaitTimeoutError,
} from "../../ground/errors.ts";
export { FfiPermissionError } from "../../ffi/libc.ts";
export { exitNow } from "../../ffi/process.ts";
export { closeAll as closeAllWatchers } from "../watch/lifecycle.ts";
