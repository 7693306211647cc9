/**
 * Attaching to and detaching from a process with ptrace(2), the way a
 * debugger does, without stopping it for longer than needed.
 *
 * @module
 */

import { ErrnoError } from "../../../ffi/libc.ts";
import { errno, testLibc } from "./libc.ts";

/** ptrace requests (include/uapi/linux/ptrace.h). */
const PTRACE_DETACH = 17;
const PTRACE_SEIZE = 0x4206;
const PTRACE_INTERRUPT = 0x4207;
/** waitpid flags (include/uapi/linux/wait.h). */
const WNOHANG = 1;
const WALL = 0x40000000;

/**
 * Attaches to `pid` with `PTRACE_SEIZE` (the tracee keeps running), so the
 * kernel reports a ptrace attach event.
 */
export function ptraceSeize(pid: number): void {
  if (testLibc().ptrace(BigInt(PTRACE_SEIZE), pid, null, null) < 0n) {
    throw new ErrnoError("ptrace", errno(), `(PTRACE_SEIZE, ${pid})`);
  }
}

/**
 * Detaches from a seized `pid`: interrupts it, waits for the stop (detaching
 * needs a stopped tracee), then `PTRACE_DETACH`. Gives up after `timeoutMs`.
 */
export async function ptraceDetach(pid: number, timeoutMs = 5000): Promise<void> {
  const c = testLibc();
  if (c.ptrace(BigInt(PTRACE_INTERRUPT), pid, null, null) < 0n) {
    throw new ErrnoError("ptrace", errno(), `(PTRACE_INTERRUPT, ${pid})`);
  }
  const status = new Uint8Array(4);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = c.waitpid(pid, status, WNOHANG | WALL);
    if (result === pid) break;
    if (result < 0) throw new ErrnoError("waitpid", errno(), `(${pid})`);
    if (Date.now() > deadline) throw new Error(`tracee ${pid} did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (c.ptrace(BigInt(PTRACE_DETACH), pid, null, null) < 0n) {
    throw new ErrnoError("ptrace", errno(), `(PTRACE_DETACH, ${pid})`);
  }
}
