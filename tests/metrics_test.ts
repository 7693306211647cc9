/**
 * `watch --metrics` against a real Prometheus: it scrapes procwatch every
 * second, and the counts of known processes must appear in its query API.
 */

import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel.ts";
import { runCli, startCli } from "./support/cli.ts";
import { freePort, promQuery, type RunningServer, startPrometheus } from "./support/servers.ts";

/**
 * Exits of each outcome the shell below makes, by the distinctive name of the
 * program. Each child first counts to 3000 (a few ms): the exit event carries
 * no name, so the metrics take it from the process context, and a process
 * gone within microseconds is sometimes unnamed there (`comm="other"`; README
 * "Filters, context and scripts") — this test is about the metrics, not that.
 */
const BUSY = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done";
const SCRIPT = `read go
for i in 1 2 3 4 5; do ./pwfleetx -c '${BUSY}; exit 3'; echo "status $?"; done
for i in 1 2; do ./pwfleetx -c '${BUSY}; kill -9 $$'; echo "status $?"; done
for i in 1 2 3 4 5 6 7; do ./pwfleetx -c '${BUSY}; exit 0'; echo "status $?"; done
echo done
`;

/** Reads lines from a stream until `last`, with a deadline. */
async function readUntil(
  stream: ReadableStream<Uint8Array>,
  last: string,
  timeoutMs = 10_000,
): Promise<string[]> {
  const lines: string[] = [];
  let text = "";
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = Date.now() + timeoutMs;
  while (!lines.includes(last)) {
    if (Date.now() > deadline) throw new Error(`never printed '${last}': ${lines.join("|")}`);
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    const parts = text.split("\n");
    text = parts.pop() ?? "";
    lines.push(...parts);
  }
  reader.releaseLock();
  return lines;
}

kernelTest(
  "watch --metrics: Prometheus scrapes exits by name and outcome, starts, events",
  async () => {
    const dir = Deno.makeTempDirSync({ prefix: "procwatch-metrics-" });
    let prometheus: RunningServer | undefined;
    let shell: Deno.ChildProcess | undefined;
    let cli: ReturnType<typeof startCli> | undefined;
    try {
      Deno.copyFileSync("/bin/dash", `${dir}/pwfleetsh`);
      Deno.copyFileSync("/bin/dash", `${dir}/pwfleetx`);
      Deno.writeTextFileSync(`${dir}/script.sh`, SCRIPT);
      shell = new Deno.Command(`${dir}/pwfleetsh`, {
        args: ["script.sh"],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const port = freePort();
      const address = `127.0.0.1:${port}`;
      cli = startCli(
        [
          "watch",
          "--metrics",
          address,
          "--quiet",
          "--tree",
          String(shell.pid),
          "--keep-going",
          "-v",
        ],
        ["--allow-ffi", `--allow-net=${address}`],
      );
      prometheus = await startPrometheus(dir, [address]);
      await cli.waitForStderr("listening");

      const writer = shell.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      // The reference: each status as the shell's waitpid() saw it.
      const statuses = (await readUntil(shell.stdout, "done"))
        .filter((line) => line.startsWith("status "))
        .map((line) => Number(line.slice("status ".length)));
      assert.deepEqual((await shell.status).code, 0);
      const count = (status: number) => statuses.filter((s) => s === status).length;
      assert.deepEqual([count(3), count(128 + 9), count(0)], [5, 2, 7]);

      const expected: Record<string, number> = {
        'procwatch_process_exits_total{comm="pwfleetx",outcome="exit_nonzero"}': count(3),
        'procwatch_process_exits_total{comm="pwfleetx",outcome="SIGKILL"}': count(137),
        'procwatch_process_exits_total{comm="pwfleetx",outcome="exit_0"}': count(0),
        // The shell itself ends too, with status 0.
        'procwatch_process_exits_total{comm="pwfleetsh",outcome="exit_0"}': 1,
        // Each child is forked by the shell, so it starts under the shell's name.
        'procwatch_process_starts_total{comm="pwfleetsh"}': statuses.length,
        'procwatch_events_total{type="fork"}': statuses.length,
        'procwatch_events_total{type="exec"}': statuses.length,
        'procwatch_events_total{type="exit"}': statuses.length + 1,
        "sum(procwatch_lost_events_total)": 0,
        "procwatch_process_lifetime_seconds_count": statuses.length + 1,
      };
      const seen: Record<string, number | null> = {};
      const deadline = Date.now() + 15_000;
      for (;;) {
        for (const query of Object.keys(expected)) {
          const result = await promQuery(prometheus, query);
          seen[query] = result.length === 1 ? result[0].value : null;
        }
        if (Object.keys(expected).every((query) => seen[query] === expected[query])) break;
        if (Date.now() > deadline) {
          const exits = await promQuery(prometheus, "procwatch_process_exits_total");
          seen.all = exits.map(({ metric, value }) => `${metric.comm}/${metric.outcome}=${value}`)
            .join(" ") as unknown as number;
          assert.deepEqual(
            seen,
            expected,
            `Prometheus never showed the counts; procwatch: ${cli.stderr()}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // The watcher's own figures are there and plausible.
      for (const gauge of ["procwatch_processes", "procwatch_resident_memory_bytes"]) {
        const [sample] = await promQuery(prometheus, gauge);
        assert.ok((sample?.value ?? 0) > 0, gauge);
      }
      const [highWater] = await promQuery(prometheus, "procwatch_queue_high_water");
      assert.ok((highWater?.value ?? 0) > 0, "queue high-water");

      cli.process.kill("SIGTERM");
      assert.deepEqual((await cli.process.status).code, 128 + 15);
      // --quiet: not one event line on stdout.
      assert.deepEqual(await cli.nextLine(), null);
    } finally {
      try {
        cli?.process.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await cli?.process.status;
      try {
        shell?.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await shell?.status;
      await prometheus?.stop();
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

/** The modules `root` loads at start-up: its imports, transitively, without dynamic `import()`. */
async function staticGraph(root: string): Promise<{ loaded: Set<string>; all: Set<string> }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    roots: string[];
    redirects: Record<string, string>;
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  const resolve = (specifier: string) => info.redirects[specifier] ?? specifier;
  const modules = new Map(info.modules.map((module) => [module.specifier, module]));
  const loaded = new Set<string>();
  const pending = [...info.roots];
  while (pending.length > 0) {
    const specifier = resolve(pending.pop()!);
    if (loaded.has(specifier)) continue;
    loaded.add(specifier);
    for (const dependency of modules.get(specifier)?.dependencies ?? []) {
      if (dependency.code !== undefined && !dependency.isDynamic) {
        pending.push(dependency.code.specifier);
      }
    }
  }
  return { loaded, all: new Set(modules.keys()) };
}

Deno.test("plain watch, wait and the package's exports load neither prom-client nor the NATS client at start-up", async () => {
  const exporters = /prom-client|@nats-io/;
  for (const root of ["cli.ts", "mod.ts", "lib/export/mod.ts"]) {
    const { loaded, all } = await staticGraph(root);
    // They are in the graph, behind import(): the check below looks at something real.
    if (root !== "mod.ts") assert.ok([...all].some((specifier) => exporters.test(specifier)), root);
    assert.deepEqual([...loaded].filter((specifier) => exporters.test(specifier)), [], root);
  }
});

Deno.test("--metrics without --allow-net: one procwatch: line naming the flag, exit 3", async () => {
  const result = await runCli(["watch", "--metrics", "127.0.0.1:9464", "-D", "1"]);
  assert.equal(result.code, 3);
  assert.match(
    result.stderr,
    /^procwatch: --metrics needs --allow-net; run it as: deno run --allow-ffi --allow-net=127\.0\.0\.1:9464 \S*cli\.ts watch --metrics 127\.0\.0\.1:9464 -D 1\n$/,
  );
  const bad = await runCli(["watch", "--metrics", "9464", "-D", "1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^procwatch: --metrics wants ADDR:PORT .* got '9464'\n$/);
});

kernelTest("startMetrics from the API: the endpoint counts what it observes", async () => {
  const { watch } = await import("../mod.ts");
  const { startMetrics } = await import("../lib/export/mod.ts");
  const port = freePort();
  using watcher = watch({
    context: true,
    handleSignals: false,
    events: ["exec", "exit"],
    signal: AbortSignal.timeout(15_000),
  });
  const metrics = await startMetrics({ listen: `127.0.0.1:${port}`, watcher });
  try {
    assert.equal(metrics.address.port, port);
    const dir = Deno.makeTempDirSync({ prefix: "procwatch-api-" });
    Deno.copyFileSync("/bin/dash", `${dir}/pwapix`);
    const status = await new Deno.Command(`${dir}/pwapix`, { args: ["-c", `${BUSY}; exit 4`] })
      .output();
    Deno.removeSync(dir, { recursive: true });
    assert.equal(status.code, 4);
    let text = "";
    for await (const event of watcher) {
      metrics.observe(event);
      // Other processes of the machine count too; look once ours has ended.
      if (event.type !== "exit" || event.process?.comm !== "pwapix") continue;
      text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      if (text.includes('procwatch_process_exits_total{comm="pwapix",outcome="exit_nonzero"} 1')) {
        break;
      }
    }
    assert.match(
      text,
      /^procwatch_process_exits_total\{comm="pwapix",outcome="exit_nonzero"\} 1$/m,
    );
    assert.match(text, /^procwatch_events_total\{type="exec"\} [1-9]/m);
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  } finally {
    await metrics.close();
  }
});
