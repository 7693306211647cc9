/**
 * The real servers the exporter tests talk to: Debian's `prometheus` and
 * `nats-server`, installed with apt-get the first time a test needs them,
 * started by the test itself on 127.0.0.1 with free ports and temporary
 * directories (never through systemd), and stopped by the test.
 *
 * @module
 */

let installing: Promise<void> | undefined;

/** Where Debian puts each binary. */
const BINARIES = { prometheus: "/usr/bin/prometheus", "nats-server": "/usr/sbin/nats-server" };

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Installs `prometheus` and `nats-server` with apt-get unless both are
 * there; once per test process.
 */
export function ensureServers(): Promise<void> {
  if (Object.values(BINARIES).every(exists)) return Promise.resolve();
  installing ??= (async () => {
    for (const args of [["update", "-qq"], ["install", "-y", "-qq", "prometheus", "nats-server"]]) {
      const result = await new Deno.Command("apt-get", {
        args,
        env: { DEBIAN_FRONTEND: "noninteractive" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!result.success) {
        throw new Error(
          `apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`,
        );
      }
    }
    // Debian starts the packaged services; the tests run their own.
    for (const unit of ["prometheus", "nats-server"]) {
      await new Deno.Command("systemctl", { args: ["disable", "--now", unit], stderr: "null" })
        .output().catch(() => {});
    }
  })();
  return installing;
}

/** A TCP port nothing listens on right now (the kernel picks it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A server process started by a test. */
export interface RunningServer {
  /** The port it serves on. */
  port: number;
  /** Its process. */
  process: Deno.ChildProcess;
  /** Everything it logged so far (stdout and stderr). */
  log(): string;
  /** Stops it (SIGKILL with `kill: true`, else SIGTERM) and waits for it to end. */
  stop(kill?: boolean): Promise<void>;
}

function startServer(command: string, args: string[], port: number): RunningServer {
  const process = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const reading = Promise.all([collect(process.stdout), collect(process.stderr)]);
  let stopped = false;
  return {
    port,
    process,
    log: () => text,
    async stop(kill = false) {
      if (!stopped) {
        stopped = true;
        try {
          process.kill(kill ? "SIGKILL" : "SIGTERM");
        } catch {
          // Already gone.
        }
      }
      await process.status;
      await reading;
    },
  };
}

/** Waits until something accepts TCP connections on `port`. */
async function untilListening(server: RunningServer, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      connection.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await server.stop(true);
  throw new Error(`server on port ${server.port} never listened: ${server.log()}`);
}

/**
 * Starts `nats-server -js` on 127.0.0.1 with its JetStream store in
 * `storeDir` (the same directory again after a restart keeps the stream).
 */
export async function startNats(storeDir: string, port = freePort()): Promise<RunningServer> {
  await ensureServers();
  const server = startServer(BINARIES["nats-server"], [
    "-js",
    "-sd",
    storeDir,
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
  ], port);
  await untilListening(server);
  return server;
}

/**
 * Starts Prometheus on 127.0.0.1 scraping `targets` (`host:port`) every
 * second, with its data in a temporary directory under `dir`.
 */
export async function startPrometheus(dir: string, targets: string[]): Promise<RunningServer> {
  await ensureServers();
  const port = freePort();
  const config = `${dir}/prometheus.yml`;
  Deno.writeTextFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "scrape_configs:",
      "  - job_name: procwatch",
      "    scrape_interval: 1s",
      "    scrape_timeout: 1s",
      "    static_configs:",
      `      - targets: [${targets.map((target) => JSON.stringify(target)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const server = startServer(BINARIES.prometheus, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${dir}/data`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], port);
  await untilListening(server);
  return server;
}

/** One sample of an instant query: its labels and value. */
export interface PromSample {
  /** The series' labels. */
  metric: Record<string, string>;
  /** The value at query time. */
  value: number;
}

/** Runs a PromQL instant query through Prometheus's HTTP API (`/api/v1/query`). */
export async function promQuery(server: RunningServer, query: string): Promise<PromSample[]> {
  const response = await fetch(
    `http://127.0.0.1:${server.port}/api/v1/query?query=${encodeURIComponent(query)}`,
  );
  const body = await response.json() as {
    status: string;
    data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
    error?: string;
  };
  if (body.status !== "success" || body.data === undefined) {
    throw new Error(`query ${query} failed: ${body.error ?? response.status}`);
  }
  return body.data.result.map(({ metric, value }) => ({ metric, value: Number(value[1]) }));
}
