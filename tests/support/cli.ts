/**
 * Running `cli.ts` as users do, as a subprocess with only `--allow-ffi`.
 *
 * @module
 */

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** A running CLI with line readers for stdout and stderr. */
export interface RunningCli {
  process: Deno.ChildProcess;
  /** Next stdout line, or `null` at end of stream. */
  nextLine(timeoutMs?: number): Promise<string | null>;
  /** Resolves when stderr contains `text`; returns all stderr so far. */
  waitForStderr(text: string, timeoutMs?: number): Promise<string>;
  /** Everything on stderr so far. */
  stderr(): string;
}

/** Starts `deno run --allow-ffi cli.ts ...args`. */
export function startCli(args: string[], extraDenoFlags: string[] = ["--allow-ffi"]): RunningCli {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", ...extraDenoFlags, CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())
    .getReader();
  let errText = "";
  const errWaiters: (() => void)[] = [];
  (async () => {
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      errText += chunk;
      errWaiters.splice(0).forEach((wake) => wake());
    }
  })();
  return {
    process,
    async nextLine(timeoutMs = 10_000) {
      const result = await withTimeout(lines.read(), timeoutMs, "stdout line");
      return result.done ? null : result.value;
    },
    async waitForStderr(text, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!errText.includes(text)) {
        if (Date.now() > deadline) throw new Error(`stderr never said '${text}': ${errText}`);
        await new Promise<void>((resolve) => {
          errWaiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
      return errText;
    },
    stderr: () => errText,
  };
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  extraDenoFlags: string[] = ["--allow-ffi"],
  wrapper: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [command, ...prefix] = wrapper.length > 0 ? wrapper : [Deno.execPath()];
  const output = await new Deno.Command(command, {
    args: [
      ...prefix,
      ...(wrapper.length > 0 ? [Deno.execPath()] : []),
      "run",
      ...extraDenoFlags,
      CLI,
      ...args,
    ],
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function splitLines(): TransformStream<string, string> {
  let pending = "";
  return new TransformStream({
    transform(chunk, controller) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (pending) controller.enqueue(pending);
    },
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
