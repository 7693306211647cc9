/**
 * Signal names and numbers, and the wait status word decoded as
 * WIFEXITED/WEXITSTATUS/WTERMSIG/WCOREDUMP do (lib/events/signals.ts).
 */

import assert from "node:assert/strict";
import { decodeWaitStatus, shellStatus, signalName, signalNumber } from "../lib/events/signals.ts";

Deno.test("signals: names and numbers, real-time ones as SIGRTMIN+n", () => {
  assert.equal(signalName(9), "SIGKILL");
  assert.equal(signalName(15), "SIGTERM");
  assert.equal(signalName(34), "SIGRTMIN");
  assert.equal(signalName(36), "SIGRTMIN+2");
  assert.equal(signalNumber("term"), 15);
  assert.equal(signalNumber("SIGKILL"), 9);
  assert.equal(signalNumber("RTMIN+1"), 35);
  assert.equal(signalNumber("nope"), undefined);
});

Deno.test("signals: a wait status decodes as WIFEXITED/WTERMSIG/WCOREDUMP say", () => {
  assert.deepEqual(decodeWaitStatus(0), {
    exitCode: 0,
    signal: null,
    signalNumber: null,
    coreDumped: false,
  });
  assert.deepEqual(decodeWaitStatus(42 << 8), {
    exitCode: 42,
    signal: null,
    signalNumber: null,
    coreDumped: false,
  });
  assert.deepEqual(decodeWaitStatus(0x80 | 6), {
    exitCode: null,
    signal: "SIGABRT",
    signalNumber: 6,
    coreDumped: true,
  });
  assert.equal(shellStatus(decodeWaitStatus(15)), 143);
  assert.equal(shellStatus(decodeWaitStatus(3 << 8)), 3);
});
