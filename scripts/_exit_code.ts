/**
 * The exit code an example script ends with for a procwatch error: the same
 * numbers `procwatch watch` uses (README, "Exit codes"), so a script fails the
 * way the command would.
 *
 * @module
 */

import type { ProcwatchError } from "@procwatch/procwatch";

const CODES: Record<ProcwatchError["code"], number> = {
  USAGE: 2,
  DENO_PERMISSION: 3,
  PERMISSION: 4,
  UNAVAILABLE: 5,
  NETWORK_NAMESPACE: 6,
  NO_SUCH_PROCESS: 7,
  TIMEOUT: 124,
  SYSTEM: 1,
};

/** The exit code for `error`, as `procwatch watch` would end. */
export function exitCodeFor(error: ProcwatchError): number {
  return CODES[error.code];
}
