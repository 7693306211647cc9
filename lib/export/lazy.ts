/**
 * The exporters' entry points for the CLI and the API, loading their npm
 * clients (prom-client, @nats-io/*) only when called: plain `watch`, `wait`
 * and programs that never export pay nothing at start-up.
 *
 * @module
 */

import { effectiveUid } from "../../ffi/process.ts";
import { ProcwatchError } from "../../ground/errors.ts";
import type { LostEvent, ProcEvent } from "../events/events.ts";
import type { ProcWatcher } from "../watch/watcher.ts";
import {
  granted,
  type HostPort,
  hostPort,
  parseListenAddress,
  parseNatsServers,
  requirePermissions,
} from "./address.ts";

/**
 * Options of {@linkcode startMetrics}.
 *
 * @example
 * ```ts
 * import { type MetricsOptions, startMetrics } from "@procwatch/procwatch/export";
 * const options: MetricsOptions = { listen: "127.0.0.1:0", topComms: 20 };
 * const metrics = await startMetrics(options);
 * console.log(metrics.address.port); // the port the system chose
 * await metrics.close();
 * ```
 */
export interface MetricsOptions {
  /** Where to listen: `ADDR:PORT` (`127.0.0.1:9464`, `:9464`) or a host and port. */
  listen: string | HostPort;
  /**
   * The watcher whose own figures (queue high-water, table size) to add.
   *
   * @default {undefined} (no watcher figures)
   */
  watcher?: ProcWatcher;
  /**
   * How many process names get their own `comm` label (the rest: `other`).
   *
   * @default {50}
   */
  topComms?: number;
}

/**
 * A running Prometheus endpoint: give it every event with `observe`.
 *
 * @example
 * ```ts
 * import { type MetricsEndpoint, startMetrics } from "@procwatch/procwatch/export";
 * const metrics: MetricsEndpoint = await startMetrics({ listen: "127.0.0.1:0" });
 * console.log(await metrics.text()); // # HELP procwatch_…
 * await metrics.close();
 * ```
 */
export interface MetricsEndpoint {
  /** Where it listens (with the port the system chose when asked for 0). */
  readonly address: HostPort;
  /** Counts one event (a watcher's events, `lost` ones included). */
  observe(event: ProcEvent): void;
  /** The metrics now, in the Prometheus text format. */
  text(): Promise<string>;
  /** Stops serving. */
  close(): Promise<void>;
}

/**
 * Serves Prometheus metrics of the events you `observe` at
 * `http://ADDR:PORT/metrics`. Needs `--allow-net` for the address. Open the
 * watcher with `context: true` for process names and lifetimes.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { startMetrics } from "@procwatch/procwatch/export";
 * using watcher = watch({ context: true });
 * const metrics = await startMetrics({ listen: "127.0.0.1:9464", watcher });
 * for await (const event of watcher) metrics.observe(event);
 * ```
 *
 * @throws {MissingPermissionError} (code `"DENO_PERMISSION"`) without `--allow-net` for the address.
 * @throws {UsageError} (code `"USAGE"`) for a malformed `listen`.
 * @throws {ProcwatchError} (code `"USAGE"`) when the address is in use or not available here.
 */
export async function startMetrics(options: MetricsOptions): Promise<MetricsEndpoint> {
  const listen = typeof options.listen === "string"
    ? parseListenAddress(options.listen)
    : options.listen;
  checkMetricsPermissions(listen);
  const { ProcessMetrics, serveMetrics } = await import("./metrics.ts");
  const metrics = new ProcessMetrics({ watcher: options.watcher, topComms: options.topComms });
  let server;
  try {
    server = await serveMetrics(metrics, listen);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable) {
      throw new ProcwatchError(
        `--metrics cannot listen on ${hostPort(listen)}: ${error.message.split(" (")[0]}`,
        "USAGE",
      );
    }
    throw error;
  }
  return {
    address: server.address,
    observe: (event) => metrics.observe(event),
    text: () => metrics.text(),
    close: () => server.close(),
  };
}

/**
 * Throws a one-line error naming the flag unless listening on `listen` is
 * allowed: a command line checks this before it starts watching.
 *
 * @example
 * ```ts
 * import { checkMetricsPermissions, parseListenAddress } from "@procwatch/procwatch/export";
 * checkMetricsPermissions(parseListenAddress("127.0.0.1:9464"));
 * ```
 *
 * @throws {MissingPermissionError} (code `"DENO_PERMISSION"`) naming `--allow-net=ADDR:PORT`.
 */
export function checkMetricsPermissions(listen: HostPort): void {
  const address = hostPort(listen);
  requirePermissions("--metrics", [{ name: "net", host: address }], [`--allow-net=${address}`]);
}

/**
 * Options of {@linkcode startNatsExport}.
 *
 * @example
 * ```ts
 * import { type NatsOptions, startNatsExport } from "@procwatch/procwatch/export";
 * const options: NatsOptions = {
 *   servers: "nats://127.0.0.1:4222",
 *   subjectPrefix: "fleet",
 *   hostname: "web-1",
 *   spoolDir: "/var/tmp/procwatch-spool",
 * };
 * const nats = await startNatsExport(options);
 * await nats.close();
 * ```
 */
export interface NatsOptions {
  /** NATS server URLs, comma-separated. */
  servers: string;
  /**
   * First subject token(s): events go to `PREFIX.<hostname>.<type>`.
   *
   * @default {"procwatch"}
   */
  subjectPrefix?: string;
  /**
   * The JetStream stream (created with subjects `PREFIX.>` when missing).
   *
   * @default {"PROCWATCH"}
   */
  stream?: string;
  /**
   * This host's name in subjects (the default needs `--allow-sys=hostname`).
   *
   * @default {Deno.hostname()}
   */
  hostname?: string;
  /**
   * The spool directory.
   *
   * @default {defaultSpoolDir()}
   */
  spoolDir?: string;
  /**
   * Most bytes the spool holds.
   *
   * @default {256 * 1024 * 1024}
   */
  spoolMaxBytes?: number;
  /**
   * Told when the server goes away or comes back.
   *
   * @default {undefined} (nothing is told)
   */
  warn?: (line: string) => void;
}

/**
 * A running JetStream export: give it every event with `publish`.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { type NatsExport, startNatsExport } from "@procwatch/procwatch/export";
 * const nats: NatsExport = await startNatsExport({ servers: "nats://127.0.0.1:4222" });
 * using watcher = watch();
 * for await (const event of watcher) {
 *   nats.publish(event);
 *   const loss = nats.takeLoss();
 *   if (loss !== null) console.error(`procwatch: ${loss.count} events not exported`);
 * }
 * ```
 */
export interface NatsExport {
  /** The spool directory in use. */
  readonly spoolDir: string;
  /** Queues one event (never blocks; only a full spool drops it). */
  publish(event: ProcEvent): void;
  /**
   * Events dropped since the last report, as a `lost` event (reason
   * `"export"`), or `null`; at most once a second unless `now`.
   */
  takeLoss(now?: boolean): LostEvent | null;
  /** Messages not yet acknowledged by the stream. */
  readonly backlog: number;
  /**
   * Waits up to `timeoutMs` (default 5 s) for the backlog to go, spools the
   * rest, disconnects; what the spool had no room for is in `takeLoss()`.
   */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * The spool directory used without `spoolDir`: `/var/lib/procwatch/spool`
 * for root; else `$XDG_STATE_HOME/procwatch/spool` when that variable is set
 * and readable (`--allow-env=XDG_STATE_HOME`); else
 * `/tmp/procwatch-UID/spool`.
 *
 * @example
 * ```ts
 * import { defaultSpoolDir } from "@procwatch/procwatch/export";
 * console.log(defaultSpoolDir()); // /var/lib/procwatch/spool
 * ```
 */
export function defaultSpoolDir(): string {
  const uid = effectiveUid();
  if (uid === 0) return "/var/lib/procwatch/spool";
  if (granted({ name: "env", variable: "XDG_STATE_HOME" })) {
    const state = Deno.env.get("XDG_STATE_HOME");
    if (state !== undefined && state.startsWith("/")) return `${state}/procwatch/spool`;
  }
  return `/tmp/procwatch-${uid}/spool`;
}

/**
 * Throws a one-line error naming every flag `--nats` lacks: network access to
 * the servers, read and write of the spool directory, and the host name when
 * `hostname` (the host name will be asked of the system) is true.
 *
 * @example
 * ```ts
 * import { checkNatsPermissions, defaultSpoolDir, parseNatsServers } from "@procwatch/procwatch/export";
 * checkNatsPermissions(parseNatsServers("nats://127.0.0.1:4222"), defaultSpoolDir(), true);
 * ```
 *
 * @throws {MissingPermissionError} (code `"DENO_PERMISSION"`) naming the missing `--allow-…` flags.
 */
export function checkNatsPermissions(
  servers: HostPort[],
  spoolDir: string,
  hostname: boolean,
): void {
  const hosts = servers.map(hostPort);
  const descriptors: Deno.PermissionDescriptor[] = [
    ...hosts.map((host) => ({ name: "net", host }) as const),
    ...(hostname ? [{ name: "sys", kind: "hostname" } as const] : []),
    { name: "read", path: spoolDir },
    { name: "write", path: spoolDir },
  ];
  requirePermissions("--nats", descriptors, [
    `--allow-net=${hosts.join(",")}`,
    ...(hostname ? ["--allow-sys=hostname"] : []),
    `--allow-read=${spoolDir}`,
    `--allow-write=${spoolDir}`,
  ]);
}

/**
 * Publishes the events you give it to NATS JetStream, each as its
 * JSON-lines record on `PREFIX.<hostname>.<type>`, in order, through an
 * on-disk spool while the server is down or slow (see lib/export/nats.ts).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { startNatsExport } from "@procwatch/procwatch/export";
 * const nats = await startNatsExport({ servers: "nats://127.0.0.1:4222" });
 * using watcher = watch();
 * for await (const event of watcher) nats.publish(event);
 * await nats.close();
 * ```
 *
 * @throws {MissingPermissionError} (code `"DENO_PERMISSION"`) naming the missing `--allow-…` flags.
 * @throws {UsageError} (code `"USAGE"`) for a malformed `servers` list.
 * @throws {ProcwatchError} (code `"USAGE"`) when the spool directory cannot be used.
 */
export async function startNatsExport(options: NatsOptions): Promise<NatsExport> {
  const servers = parseNatsServers(options.servers);
  const spoolDir = options.spoolDir ?? defaultSpoolDir();
  checkNatsPermissions(servers, spoolDir, options.hostname === undefined);
  const hostname = options.hostname ?? Deno.hostname();
  const { NatsExporter } = await import("./nats.ts");
  let exporter;
  try {
    exporter = new NatsExporter({
      servers: servers.map((server) => `nats://${hostPort(server)}`).join(","),
      subjectPrefix: options.subjectPrefix,
      stream: options.stream,
      hostname,
      spoolDir,
      spoolMaxBytes: options.spoolMaxBytes,
      warn: options.warn,
    });
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotFound) {
      throw new ProcwatchError(
        `--nats cannot use the spool directory ${spoolDir}: ${error.message.split(": ")[0]}`,
        "USAGE",
      );
    }
    throw error;
  }
  await exporter.firstAttempt;
  return {
    spoolDir,
    publish: (event) => exporter.publish(event),
    takeLoss: (now) => exporter.takeLoss(now),
    get backlog() {
      return exporter.backlog;
    },
    close: (timeoutMs) => exporter.close(timeoutMs),
  };
}
