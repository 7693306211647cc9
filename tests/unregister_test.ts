/**
 * Every way a watcher ends sends PROC_CN_MCAST_IGNORE.
 *
 * Each case runs the watcher in a child process, borrows its netlink socket
 * (pidfd_getfd) once it is registered, lets it end, and then asks whether the
 * kernel still sends events to that socket: it does if and only if the socket
 * never sent IGNORE (see tests/support/registration.ts for why this is immune
 * to the other listeners that parallel tests hold). A SIGKILLed watcher is
 * the control that shows the probe sees a leaked registration.
 */

import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel.ts";
import {
  type BorrowedListener,
  borrowListeners,
  release,
  stillReceives,
} from "./support/registration.ts";

const fixture = new URL("./support/unregister_fixture.ts", import.meta.url).pathname;
const cli = new URL("../cli.ts", import.meta.url).pathname;

/** Reads lines from a stream until one matches, or throws after `timeoutMs`. */
async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<[ReadableStreamDefaultReader<string>, Promise<string>]> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${text}`)),
      timeoutMs,
    );
  });
  try {
    while (!pattern.test(text)) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error(`stream ended before ${pattern}: ${text}`);
      text += value;
    }
  } finally {
    clearTimeout(timer);
  }
  return [reader, Promise.resolve(text)];
}

/** Keeps reading a reader so the child never blocks on a full pipe. */
async function discard(reader: ReadableStreamDefaultReader<string>): Promise<string> {
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += value;
  }
}

/** The child's status, or a failure (after killing it) if it does not end in time. */
async function statusWithin(
  child: Deno.ChildProcess,
  timeoutMs: number,
): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the watcher process did not end within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([child.status, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Case {
  /** The child process, spawned with everything piped; it says `ready PORT` (or `listening`). */
  child: Deno.ChildProcess;
  /** Which stream says "registered". */
  ready: "stdout" | "stderr";
  /** What it says then, when not `ready PORT` (stdout) or `listening` (stderr). */
  readyPattern?: RegExp;
  /** What ends the watcher once its socket is borrowed. */
  end: (child: Deno.ChildProcess) => Promise<void> | void;
  /** The exit code the child must end with. */
  code: number;
}

async function checkUnregisters(make: () => Case, expectRegistered = false): Promise<void> {
  const { child, ready, readyPattern, end, code } = make();
  let listeners: BorrowedListener[] = [];
  const writer = child.stdin.getWriter();
  try {
    const readyStream = ready === "stdout" ? child.stdout : child.stderr;
    const otherStream = ready === "stdout" ? child.stderr : child.stdout;
    const otherText = discard(otherStream.pipeThrough(new TextDecoderStream()).getReader());
    const [reader, readyLine] = await waitForLine(
      readyStream,
      readyPattern ?? (ready === "stdout" ? /ready \d+\n/ : /listening/),
    );
    const readyText = discard(reader);
    // No "is it registered now?" probe here: the watcher drains the same
    // socket and would win the race for the probe's events. The SIGKILL
    // control shows that a registered socket is seen once its owner is gone.
    // Every proc connector socket of the process: with context the CLI also has the
    // exec-capture worker's, and each must unregister.
    listeners = borrowListeners(child.pid);
    const port = /ready (\d+)/.exec(await readyLine)?.[1];
    if (port !== undefined) {
      assert.ok(listeners.some((listener) => listener.port === Number(port)), "wrong socket");
    }

    await end(child);
    await writer.write(new TextEncoder().encode("go\n")).catch(() => {});
    await writer.close().catch(() => {});
    const status = await statusWithin(child, 20_000);
    const output = `${await readyText}${await otherText}`;
    assert.equal(status.code, code, `exit code ${status.code}; output: ${output}`);
    for (const listener of listeners) {
      assert.equal(
        await stillReceives(listener),
        expectRegistered,
        expectRegistered
          ? "the probe did not see a registration the watcher leaked"
          : "the watcher ended without PROC_CN_MCAST_IGNORE: the kernel still sends to its socket",
      );
    }
  } finally {
    await writer.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    for (const listener of listeners) await release(listener);
  }
}

function fixtureCase(mode: string, code: number, signal?: Deno.Signal): () => Case {
  return () => ({
    child: new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", fixture, mode],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
    ready: "stdout",
    end: (child) => {
      if (signal) child.kill(signal);
    },
    code,
  });
}

function cliCase(args: string[], code: number, end: Case["end"]): () => Case {
  return () => ({
    child: new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", cli, "watch", "-v", ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
    ready: "stderr",
    end,
    code,
  });
}

kernelTest(
  "control: a watcher killed with SIGKILL stays registered, and the probe sees it",
  async () => {
    await checkUnregisters(fixtureCase("sigkill", 137), true);
  },
);

kernelTest("close() unregisters", async () => {
  await checkUnregisters(fixtureCase("close", 0));
});

kernelTest("`using` (dispose) unregisters", async () => {
  await checkUnregisters(fixtureCase("dispose", 0));
});

kernelTest("`await using` (async dispose) unregisters", async () => {
  await checkUnregisters(fixtureCase("async-dispose", 0));
});

for (const [signal, number] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]] as const) {
  kernelTest(`${signal} to a script unregisters and exits ${128 + number}`, async () => {
    await checkUnregisters(fixtureCase("signal", 128 + number, signal));
  });
  kernelTest(`${signal} to \`cli.ts watch\` unregisters and exits ${128 + number}`, async () => {
    await checkUnregisters(cliCase([], 128 + number, (child) => child.kill(signal)));
  });
}

kernelTest("an exception thrown inside the user's for-await loop unregisters", async () => {
  await checkUnregisters(fixtureCase("throw-in-loop", 1));
});

kernelTest("break out of the for-await loop unregisters", async () => {
  await checkUnregisters(fixtureCase("break-in-loop", 0));
});

kernelTest("an uncaught exception outside the loop unregisters", async () => {
  await checkUnregisters(fixtureCase("uncaught", 1));
});

kernelTest("an unhandled rejection unregisters", async () => {
  await checkUnregisters(fixtureCase("rejection", 1));
});

kernelTest("Deno.exit() with an open watcher unregisters (unload)", async () => {
  await checkUnregisters(fixtureCase("exit", 0));
});

kernelTest("`cli.ts watch --duration` unregisters when time is up", async () => {
  await checkUnregisters(cliCase(["--duration", "1.5"], 0, () => {}));
});

kernelTest("`cli.ts watch --count` unregisters after the last event", async () => {
  const sleeper = new Deno.Command("sleep", { args: ["60"], stdin: "null" }).spawn();
  try {
    await checkUnregisters(
      cliCase(["--count", "1", "--pid", String(sleeper.pid)], 0, () => sleeper.kill("SIGKILL")),
    );
  } finally {
    try {
      sleeper.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await sleeper.status;
  }
});

kernelTest(
  "`cli.ts wait` unregisters before it leaves, the moment the last pid ended",
  async () => {
    const sleepers = [0, 1].map(() =>
      new Deno.Command("sleep", { args: ["60"], stdin: "null" }).spawn()
    );
    try {
      await checkUnregisters(() => ({
        child: new Deno.Command(Deno.execPath(), {
          args: ["run", "--allow-ffi", cli, "wait", "-v", ...sleepers.map((s) => String(s.pid))],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
        ready: "stderr",
        readyPattern: /armed/,
        end: async () => {
          sleepers[0].kill("SIGKILL");
          await sleepers[0].status;
          sleepers[1].kill("SIGTERM");
        },
        code: 143, // the last one's status
      }));
    } finally {
      for (const sleeper of sleepers) {
        try {
          sleeper.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        await sleeper.status;
      }
    }
  },
);
