/**
 * Running procwatch (the CLI or a script) as a child process in tests, and
 * reading its output line by line as it comes.
 *
 * @module
 */

import { kernelTest } from "./kernel.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Collects a stream's lines as they arrive and lets a test wait for one. */
export class LineReader {
  /** Every complete line so far. */
  readonly lines: string[] = [];
  /** Settles when the stream ends. */
  readonly done: Promise<void>;
  #waiters: (() => void)[] = [];

  /** Starts reading `stream`. */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#read(stream);
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      this.lines.push(...parts);
      for (const wake of this.#waiters.splice(0)) wake();
    }
    if (rest !== "") this.lines.push(rest);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Waits until a line matches (throws after `timeoutMs`, showing what was read). */
  async waitFor(match: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    this.done.then(() => ended = true);
    for (;;) {
      const found = this.lines.find(match);
      if (found !== undefined) return found;
      if (ended) throw new Error(`stream ended without the line; got:\n${this.lines.join("\n")}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for a line; got:\n${this.lines.join("\n")}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** A running `deno run --allow-ffi <file> ...args` from the repository root. */
export interface DenoChild {
  child: Deno.ChildProcess;
  stdout: LineReader;
  stderr: LineReader;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/**
 * Starts `deno run --allow-ffi FILE ARGS` (only the permission users give it).
 *
 * @example
 * ```ts ignore
 * const cli = spawnDeno("cli.ts", ["watch", "-v"]);
 * await cli.stderr.waitFor((line) => line.includes("listening"));
 * ```
 */
export function spawnDeno(
  file: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: "piped" | "null" } = {},
): DenoChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", file, ...args],
    cwd: ROOT,
    env: options.env,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new LineReader(child.stdout);
  const stderr = new LineReader(child.stderr);
  return {
    child,
    stdout,
    stderr,
    async stop(signal: Deno.Signal = "SIGINT"): Promise<number> {
      try {
        child.kill(signal);
      } catch {
        // Already exited.
      }
      const status = await child.status;
      await Promise.all([stdout.done, stderr.done]);
      return status.code;
    },
  };
}

/** Runs `deno run --allow-ffi FILE ARGS` to the end. */
export function runDeno(
  file: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runDenoCommand(["run", "--allow-ffi", file, ...args], env);
}

/** Runs `deno ARGS` (any subcommand) in the checkout to the end. */
export async function runDenoCommand(
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Spawns a shell command with piped stdout; returns it and a line reader. */
export function spawnShell(
  script: string,
  stdin: "piped" | "null" = "null",
): { child: Deno.ChildProcess; stdout: LineReader } {
  const child = new Deno.Command("sh", {
    args: ["-c", script],
    stdin,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  return { child, stdout: new LineReader(child.stdout) };
}

/**
 * Runs `fn` while holding a machine-wide lock, so that tests which load the
 * machine (process storms) and tests which measure how fast procwatch reacts
 * do not run at the same time under `deno test --parallel`.
 *
 * @example
 * ```ts ignore
 * await exclusively(async () => { ... });
 * ```
 */
export async function exclusively<T>(fn: () => Promise<T>): Promise<T> {
  using file = await Deno.open("/tmp/procwatch-heavy-tests.lock", { create: true, write: true });
  await file.lock(true);
  try {
    return await fn();
  } finally {
    await file.unlock();
  }
}

/**
 * A {@linkcode kernelTest} that holds the {@linkcode exclusively} lock: for
 * tests that time how fast procwatch names short-lived processes, and for
 * tests that load the machine.
 *
 * @example
 * ```ts ignore
 * serialKernelTest("names 200 short processes", async () => { ... });
 * ```
 */
export function serialKernelTest(
  name: string,
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  kernelTest(name, (t) => exclusively(() => fn(t)));
}
