/**
 * Test processes for `wait`: targets that are not the waiter's children, that
 * end when the test says so, zombies, and a runner for `cli.ts wait`.
 *
 * @module
 */

import { readFileText } from "../../ffi/proc_fs.ts";
import { readProcStat } from "../../lib/process/proc_stat.ts";

/** The repository root. */
export const ROOT: string = new URL("../../", import.meta.url).pathname;
/** `cli.ts` of this checkout. */
export const CLI: string = `${ROOT}cli.ts`;

/** Polls `check` every 10 ms until it returns true or `timeoutMs` passes (then throws `what`). */
export async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A file whose creation lets a target go on: targets poll for it, so that a
 * test can let a process end exactly when its waiter is armed.
 */
export class Gate {
  readonly path: string;
  constructor(dir: string, name: string) {
    this.path = `${dir}/${name}`;
  }
  /** A shell snippet that waits until the gate opens. */
  get shell(): string {
    return `while [ ! -e '${this.path}' ]; do sleep 0.02; done`;
  }
  /** Opens the gate. */
  open(): void {
    Deno.writeTextFileSync(this.path, "");
  }
}

/**
 * Starts `script` (sh) as a grandchild whose parent shell has already
 * exited: reparented, it is nobody's child among the test's processes.
 * Returns its pid.
 */
export async function startOrphan(script: string, cwd?: string): Promise<number> {
  const { stdout, code } = await new Deno.Command("sh", {
    args: ["-c", `sh -c "$1" </dev/null >/dev/null 2>&1 & echo $!`, "sh", script],
    cwd,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`could not start orphan: exit ${code}`);
  const pid = Number(new TextDecoder().decode(stdout).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error("no orphan pid");
  return pid;
}

/** Whether `pid` exists (zombies included), from /proc. */
export function alive(pid: number): boolean {
  return readProcStat(pid) !== null;
}

/** Sends SIGKILL to `pid` if it still exists. */
export function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** A process started under a parent shell that the test controls. */
export interface Parented {
  /** The process. */
  pid: number;
  /** Its parent shell. */
  parent: Deno.ChildProcess;
  /** Kills the parent if still there and releases it (init then reaps what is left). */
  close(): Promise<void>;
}

/**
 * Starts `script` (sh) under a parent shell that either reaps it as soon as
 * it ends (`reaps`: the parent runs `wait`) or never does (the parent `exec`s
 * `sleep`, so it stays a zombie).
 */
export async function startUnderParent(script: string, reaps: boolean): Promise<Parented> {
  const parent = new Deno.Command("sh", {
    args: [
      "-c",
      `(${script}) </dev/null >/dev/null 2>&1 & echo $!; ${reaps ? "wait" : "exec sleep 60"}`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error("no child pid from the parent shell");
  return {
    pid,
    parent,
    close: async () => {
      killQuietly(parent.pid);
      await parent.status;
      await parent.stdout.cancel().catch(() => {});
    },
  };
}

/**
 * A zombie: a subshell that exits with `exitCode` (after 0.2 s: the shell would
 * reap it if it ended before the `exec`) under a parent that never reaps it.
 */
export async function startZombie(exitCode: number): Promise<Parented> {
  const zombie = await startUnderParent(`sleep 0.2; exit ${exitCode}`, false);
  await until(() => readProcStat(zombie.pid)?.state === "Z", `${zombie.pid} to become a zombie`);
  return zombie;
}

/** What a finished `cli.ts wait` (or script) run produced. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running `cli.ts wait -v ...` whose `armed` resolves when it says it is armed. */
export interface RunningWait {
  child: Deno.ChildProcess;
  /** Resolves with stderr so far once the "armed" line appeared; rejects if it exits first. */
  armed: Promise<string>;
  /** Resolves when the process has exited. */
  done: Promise<RunResult>;
  /** Whether the process has exited. */
  finished(): boolean;
}

/** How to run the waiter. */
export interface RunOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Run as `nobody` (uid/gid 65534) with a readable copy of the npm cache. */
  nobody?: boolean;
  /** Run in a new network namespace (`unshare -n`), where the proc connector refuses. */
  newNetNamespace?: boolean;
  /** Extra `deno run` flags, before the script. */
  denoFlags?: string[];
}

let nobodyDenoDir: string | undefined;

/** A DENO_DIR that `nobody` can use: a copy of this Deno's npm cache, owned by nobody. */
async function denoDirForNobody(): Promise<string> {
  if (nobodyDenoDir !== undefined) return nobodyDenoDir;
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const npmCache: string = JSON.parse(new TextDecoder().decode(info.stdout)).npmCache;
  const dir = await Deno.makeTempDir({ prefix: "procwatch-nobody-" });
  const copy = await new Deno.Command("sh", {
    args: ["-c", `cp -r "$1" "$2/npm" && chown -R 65534:65534 "$2"`, "sh", npmCache, dir],
  }).output();
  if (copy.code !== 0) throw new Error("could not prepare DENO_DIR for nobody");
  nobodyDenoDir = dir;
  return dir;
}

/** Spawns `deno run --allow-ffi <script> <args>` with piped output. */
export async function spawnDeno(
  script: string,
  args: string[],
  options: RunOptions = {},
): Promise<Deno.ChildProcess> {
  const env: Record<string, string> = { ...options.env };
  let command = Deno.execPath();
  let argv = ["run", "--allow-ffi", ...(options.denoFlags ?? []), script, ...args];
  if (options.nobody) {
    env.DENO_DIR = await denoDirForNobody();
    argv = [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      command,
      argv[0],
      "--cached-only",
      ...argv.slice(1),
    ];
    command = "setpriv";
  }
  if (options.newNetNamespace) {
    argv = ["-n", command, ...argv];
    command = "unshare";
  }
  return new Deno.Command(command, {
    args: argv,
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs to the end and collects the output. */
export async function runDeno(
  script: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = await spawnDeno(script, args, options);
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Starts `cli.ts wait -v <args>`; `armed` resolves at its "armed" line on stderr. */
export async function startWait(args: string[], options: RunOptions = {}): Promise<RunningWait> {
  const child = await spawnDeno(CLI, ["wait", "-v", ...args], options);
  let stderr = "";
  let stdout = "";
  let exited = false;
  let onArmed: (text: string) => void = () => {};
  let onEarlyExit: (error: Error) => void = () => {};
  const armed = new Promise<string>((resolve, reject) => {
    onArmed = resolve;
    onEarlyExit = reject;
  });
  armed.catch(() => {}); // Tests that expect no arming never await it.
  const readAll = async (stream: ReadableStream<Uint8Array>, sink: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) sink(text);
  };
  const reading = Promise.all([
    readAll(child.stderr, (text) => {
      stderr += text;
      if (/procwatch: armed: /.test(stderr)) onArmed(stderr);
    }),
    readAll(child.stdout, (text) => stdout += text),
  ]);
  const done = (async () => {
    const status = await child.status;
    await reading;
    exited = true;
    onEarlyExit(new Error(`wait exited (${status.code}) before it was armed: ${stderr}`));
    return { code: status.code, stdout, stderr };
  })();
  return { child, armed, done, finished: () => exited };
}

/**
 * Waits until process `pid` has a proc connector socket registered (the
 * netlink socket of protocol NETLINK_CONNECTOR, 11, in group CN_IDX_PROC).
 */
export async function untilConnectorSocket(pid: number): Promise<void> {
  await until(() => {
    const table = readFileText("/proc/net/netlink") ?? "";
    // sk Eth Pid Groups ...: our socket's port id is the pid of the process that bound it first.
    return table.split("\n").some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === "11" && Number(fields[2]) === pid;
    });
  }, `a proc connector socket in ${pid}`);
}
