/**
 * `watch --nats` against a real `nats-server -js`: a storm of processes
 * must come back from the stream exactly — the same records `--json`
 * printed, in the same order — also when the server is killed in the middle
 * and started again; and a full spool counts its drops as `lost` (`export`).
 */

import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { kernelTest } from "./support/kernel.ts";
import { runCli, startCli } from "./support/cli.ts";
import { freePort, type RunningServer, startNats } from "./support/servers.ts";
import { subjectToken } from "../lib/export/nats.ts";

const STORM = 500;

/** A shell that, once told, starts `count` processes at once and prints each pid. */
function stormScript(count: number): string {
  return `read go
i=0
while [ $i -lt ${count} ]; do ./pwstormx -c : & echo "pid $!"; i=$((i + 1)); done
wait
echo done
`;
}

/** Lines of a stream, one at a time. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #queued: string[] = [];
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<string | null> {
    while (this.#queued.length === 0) {
      const { value, done } = await this.#reader.read();
      if (done) return null;
      const parts = (this.#buffer + value).split("\n");
      this.#buffer = parts.pop() ?? "";
      this.#queued.push(...parts);
    }
    return this.#queued.shift() ?? null;
  }
}

interface StormRun {
  /** The pids the shell started (`$!`), the reference. */
  pids: number[];
  /** What `watch --json` printed. */
  stdout: string[];
  /** procwatch's stderr. */
  stderr: string;
  /** procwatch's exit code. */
  code: number;
}

/**
 * Runs a storm under `watch --tree SHELL --json --nats`; `duringStorm` is
 * called with each pid line's index (to kill the server in the middle).
 */
async function runStorm(
  natsPort: number,
  prefix: string,
  spool: string,
  extra: string[],
  duringStorm: (index: number) => void = () => {},
  beforeStop: (cli: ReturnType<typeof startCli>) => Promise<void> = () => Promise.resolve(),
): Promise<StormRun> {
  const dir = Deno.makeTempDirSync({ prefix: "procwatch-storm-" });
  try {
    Deno.copyFileSync("/bin/dash", `${dir}/pwstormsh`);
    Deno.copyFileSync("/bin/dash", `${dir}/pwstormx`);
    Deno.writeTextFileSync(`${dir}/storm.sh`, stormScript(STORM));
    const shell = new Deno.Command(`${dir}/pwstormsh`, {
      args: ["storm.sh"],
      cwd: dir,
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const server = `127.0.0.1:${natsPort}`;
    const cli = startCli(
      [
        "watch",
        "--json",
        "-v",
        "--tree",
        String(shell.pid),
        "--keep-going",
        // A storm elsewhere on a shared machine must not make the kernel drop ours.
        "--buffer",
        "256M",
        "--nats",
        `nats://${server}`,
        "--subject",
        prefix,
        "--spool",
        spool,
        ...extra,
      ],
      [
        "--allow-ffi",
        `--allow-net=${server}`,
        "--allow-sys=hostname",
        `--allow-read=${spool}`,
        `--allow-write=${spool}`,
      ],
    );
    try {
      await cli.waitForStderr("listening");
      const writer = shell.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      const lines = new Lines(shell.stdout);
      const pids: number[] = [];
      for (let line = await lines.next(); line !== "done"; line = await lines.next()) {
        assert.ok(line !== null, "the storm shell ended early");
        if (line.startsWith("pid ")) {
          pids.push(Number(line.slice(4)));
          duringStorm(pids.length);
        }
      }
      assert.equal((await shell.status).code, 0);
      // The shell's own exit is the storm's last event: once procwatch has
      // printed it, SIGTERM; procwatch then sends its backlog (or spools it).
      const stdout: string[] = [];
      const shellExit = (line: string) => {
        const record = JSON.parse(line);
        return record.type === "exit" && record.pid === shell.pid;
      };
      for (let line = await cli.nextLine(25_000); line !== null;) {
        stdout.push(line);
        if (shellExit(line)) {
          await beforeStop(cli);
          cli.process.kill("SIGTERM");
          break;
        }
        line = await cli.nextLine(25_000);
      }
      for (
        let line = await cli.nextLine(25_000);
        line !== null;
        line = await cli.nextLine(25_000)
      ) {
        stdout.push(line);
      }
      const code = (await cli.process.status).code;
      return { pids, stdout, stderr: cli.stderr(), code };
    } finally {
      try {
        cli.process.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await cli.process.status;
      try {
        shell.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await shell.status;
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Every message of the stream, in stream order: subject and data. */
async function readStream(port: number): Promise<{ subject: string; data: string }[]> {
  const connection = await connect({ servers: `127.0.0.1:${port}` });
  try {
    const manager = await jetstreamManager(connection);
    const info = await manager.streams.info("PROCWATCH");
    const total = info.state.messages;
    const consumer = await jetstream(connection).consumers.get("PROCWATCH");
    const out: { subject: string; data: string }[] = [];
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: total - out.length, expires: 2000 });
      for await (const message of batch) {
        out.push({ subject: message.subject, data: message.string() });
      }
    }
    return out;
  } finally {
    await connection.close();
  }
}

/** The storm's reference check: each started pid has fork, exec, exit (status 0), in that order. */
function checkPids(pids: number[], records: Record<string, unknown>[]): void {
  assert.equal(pids.length, STORM);
  const wanted = new Set(pids);
  const byPid = new Map<number, string[]>();
  for (const record of records) {
    const pid = (record.type === "fork" ? record.childPid : record.pid) as number;
    if (!wanted.has(pid)) continue;
    if (record.type === "exit") assert.equal(record.exitCode, 0, `pid ${pid}`);
    byPid.set(pid, [...(byPid.get(pid) ?? []), record.type as string]);
  }
  for (const pid of pids) assert.deepEqual(byPid.get(pid), ["fork", "exec", "exit"], `pid ${pid}`);
}

/** What procwatch publishes of its --json output: all but its own export losses. */
function eventLines(stdout: string[]): string[] {
  return stdout.filter((line) => !/"type":"lost".*"reason":"export"/.test(line));
}

kernelTest(
  "watch --nats: a storm's events come back from the stream exactly, in order",
  async () => {
    const store = Deno.makeTempDirSync({ prefix: "procwatch-nats-" });
    let server: RunningServer | undefined;
    try {
      server = await startNats(store);
      const prefix = "pwtest";
      const run = await runStorm(server.port, prefix, `${store}/spool`, []);
      assert.equal(run.code, 128 + 15, run.stderr);
      const stream = await readStream(server.port);
      // The same records --json printed, in the same order, each once.
      assert.deepEqual(stream.map((message) => message.data), eventLines(run.stdout));
      const host = subjectToken(Deno.hostname());
      for (const message of stream) {
        const type = JSON.parse(message.data).type;
        assert.equal(message.subject, `${prefix}.${host}.${type}`);
      }
      checkPids(run.pids, stream.map((message) => JSON.parse(message.data)));
    } finally {
      await server?.stop();
      Deno.removeSync(store, { recursive: true });
    }
  },
);

kernelTest(
  "watch --nats: the server killed mid-storm and restarted: nothing lost, order kept",
  async () => {
    const store = Deno.makeTempDirSync({ prefix: "procwatch-nats-" });
    let server: RunningServer | undefined;
    let restarted: Promise<void> | undefined;
    try {
      server = await startNats(store);
      const port = server.port;
      const run = await runStorm(port, "pwtest", `${store}/spool`, [], (index) => {
        if (index !== Math.floor(STORM / 3)) return;
        const killed = server!;
        restarted = (async () => {
          await killed.stop(true); // SIGKILL: no goodbye to the client
          await new Promise((resolve) => setTimeout(resolve, 1000));
          server = await startNats(store, port);
        })();
      });
      await restarted;
      assert.equal(run.code, 128 + 15, run.stderr);
      assert.match(run.stderr, /NATS server .* unavailable/);
      assert.match(run.stderr, /NATS server reachable again/);
      assert.doesNotMatch(run.stderr, /events? lost/);
      const stream = await readStream(port);
      assert.deepEqual(stream.map((message) => message.data), eventLines(run.stdout));
      checkPids(run.pids, stream.map((message) => JSON.parse(message.data)));
    } finally {
      await restarted?.catch(() => {});
      await server?.stop();
      Deno.removeSync(store, { recursive: true });
    }
  },
);

kernelTest(
  "watch --nats: the server stalled (SIGSTOP) mid-storm: nothing lost, order kept",
  async () => {
    const store = Deno.makeTempDirSync({ prefix: "procwatch-nats-" });
    let server: RunningServer | undefined;
    let resumed: Promise<void> | undefined;
    try {
      server = await startNats(store);
      const stalled = server;
      const run = await runStorm(server.port, "pwtest", `${store}/spool`, [], (index) => {
        if (index !== Math.floor(STORM / 3)) return;
        // Longer than the 5 s acknowledgement timeout: procwatch gives up on the
        // connection, spools, and resends once the server answers again.
        stalled.process.kill("SIGSTOP");
        resumed = new Promise((resolve) => setTimeout(resolve, 6000)).then(() => {
          stalled.process.kill("SIGCONT");
        });
      }, async (cli) => {
        // Stop only once procwatch has connected again (SIGTERM would spool the rest).
        await resumed;
        await cli.waitForStderr("NATS server reachable again", 15_000);
      });
      await resumed;
      assert.equal(run.code, 128 + 15, run.stderr);
      assert.match(run.stderr, /NATS server .* unavailable/);
      assert.doesNotMatch(run.stderr, /events? lost/);
      const stream = await readStream(server.port);
      assert.deepEqual(stream.map((message) => message.data), eventLines(run.stdout));
      checkPids(run.pids, stream.map((message) => JSON.parse(message.data)));
    } finally {
      await resumed?.catch(() => {});
      await server?.stop();
      Deno.removeSync(store, { recursive: true });
    }
  },
);

kernelTest(
  "watch --nats: a full spool drops events as lost (reason export), -S counts them",
  async () => {
    const store = Deno.makeTempDirSync({ prefix: "procwatch-nats-" });
    let server: RunningServer | undefined;
    try {
      // No server during the storm: memory, then a 64 KiB spool, then drops.
      const port = freePort();
      const run = await runStorm(
        port,
        "pwtest",
        `${store}/spool`,
        ["--spool-size", "64K", "-S"],
      );
      assert.equal(run.code, 128 + 15, run.stderr);
      const lost = run.stdout.map((line) => JSON.parse(line))
        .filter((record) => record.type === "lost");
      assert.ok(lost.length > 0, run.stderr);
      for (const record of lost) assert.equal(record.reason, "export");
      const dropped = lost.reduce((sum, record) => sum + record.count, 0);
      assert.match(run.stderr, /events lost \(the exporter's spool was full: not exported\)/);
      const summary = JSON.parse(run.stdout.at(-1)!);
      assert.equal(summary.lostBy.export, dropped);
      // What was not dropped was spooled at exit: the next run sends it, in order.
      server = await startNats(store, port);
      const events = eventLines(run.stdout).slice(0, -1); // without the -S summary
      const next = await runStorm(port, "pwtest", `${store}/spool`, []);
      assert.equal(next.code, 128 + 15, next.stderr);
      const stream = (await readStream(port)).map((message) => message.data);
      const kept = stream.slice(0, stream.length - eventLines(next.stdout).length);
      assert.deepEqual(stream.slice(kept.length), eventLines(next.stdout));
      assert.equal(kept.length + dropped, events.length);
      // The kept ones are the events in order, minus the dropped ones.
      let at = 0;
      for (const data of kept) {
        while (at < events.length && events[at] !== data) at++;
        assert.ok(at < events.length, `spooled record out of order: ${data}`);
        at++;
      }
    } finally {
      await server?.stop();
      Deno.removeSync(store, { recursive: true });
    }
  },
);

Deno.test("--nats without its permissions: one procwatch: line naming them, exit 3", async () => {
  const result = await runCli(["watch", "--nats", "nats://127.0.0.1:4222", "--spool", "/tmp/pw"]);
  assert.equal(result.code, 3);
  assert.match(
    result.stderr,
    /^procwatch: --nats needs --allow-net and --allow-sys and --allow-read and --allow-write; run it as: deno run --allow-ffi --allow-net=127\.0\.0\.1:4222 --allow-sys=hostname --allow-read=\/tmp\/pw --allow-write=\/tmp\/pw \S*cli\.ts watch --nats nats:\/\/127\.0\.0\.1:4222 --spool \/tmp\/pw\n$/,
  );
  const only = await runCli(["watch", "--subject", "x", "-D", "1"]);
  assert.equal(only.code, 2);
  assert.equal(only.stderr, "procwatch: --subject needs --nats\n");
});
