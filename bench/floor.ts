/**
 * The C floor listener (bench/floor_listener.c): built with `cc` into a
 * temporary directory when a compiler is present, run beside each listener
 * during a storm; the bench's "× C floor" figures divide by its CPU. Bench
 * only: procwatch has no native build.
 *
 * @module
 */

import { cpuSecondsOf } from "./peers.ts";

/** A running floor listener. */
export interface FloorListener {
  /** utime + stime so far, in seconds. */
  cpuSeconds(): number;
  /** Ends it (SIGTERM) and waits for it. */
  stop(): Promise<void>;
}

/** Where the built floor is, or why there is none. */
export type FloorBuild = { path: string } | { skipped: string };

/**
 * Builds bench/floor_listener.c with `cc -O2` into a temporary directory.
 *
 * @example
 * ```ts ignore
 * import { buildFloor } from "./floor.ts";
 * const floor = await buildFloor();
 * if ("skipped" in floor) console.log(floor.skipped);
 * ```
 */
export async function buildFloor(): Promise<FloorBuild> {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-bench-floor-" });
  const path = `${dir}/floor_listener`;
  const source = new URL("./floor_listener.c", import.meta.url).pathname;
  try {
    const built = await new Deno.Command("cc", {
      args: ["-O2", "-o", path, source],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!built.success) {
      return { skipped: `C floor skipped: cc failed: ${new TextDecoder().decode(built.stderr)}` };
    }
    return { path };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return {
        skipped: "C floor skipped: no C compiler (cc) here; install gcc for the floor rows",
      };
    }
    throw error;
  }
}

/**
 * Starts the floor listener, its lines to `output` (a file, as the other
 * peers write theirs); resolves once it is subscribed.
 *
 * @example
 * ```ts ignore
 * import { buildFloor, startFloor } from "./floor.ts";
 * const floor = await buildFloor();
 * if ("path" in floor) await (await startFloor(floor.path, "/dev/null")).stop();
 * ```
 */
export async function startFloor(path: string, output: string): Promise<FloorListener> {
  const out = await Deno.open(output, { write: true, create: true, truncate: true });
  const child = new Deno.Command("sh", {
    args: ["-c", 'exec "$0" > "$1"', path, output],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  out.close();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`C floor listener did not start: ${text}`);
    text += value;
  }
  return {
    cpuSeconds: () => cpuSecondsOf(child.pid),
    async stop() {
      child.kill("SIGTERM");
      while (!(await reader.read()).done) { /* its last words: the recv error count */ }
      await child.status;
      await Deno.remove(output).catch(() => {});
    },
  };
}
