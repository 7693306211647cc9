/**
 * Turning any error into one line on stderr and an exit code.
 *
 * @module
 */

import { FfiPermissionError } from "../ffi/libc.ts";
import { ExitCode, ProcwatchError } from "../lib/errors.ts";
import { warn } from "./output.ts";

/** Prints `procwatch: <message>` and returns the exit code for `error`. */
export function reportError(error: unknown): number {
  if (error instanceof FfiPermissionError) {
    warn(`procwatch: ${error.message}`);
    return ExitCode.NO_FFI;
  }
  if (error instanceof ProcwatchError) {
    warn(`procwatch: ${error.message}`);
    return error.exitCode;
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    warn(`procwatch: ${firstLine(error)}`);
    return ExitCode.NO_FFI;
  }
  warn(`procwatch: unexpected error: ${firstLine(error)}`);
  if (Deno.env.get !== undefined && safeEnv("PROCWATCH_DEBUG")) console.error(error);
  return ExitCode.FAILURE;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}

function safeEnv(name: string): boolean {
  try {
    return Deno.env.get(name) !== undefined;
  } catch {
    return false;
  }
}
