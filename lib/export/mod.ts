/**
 * Sending events to the rest of a fleet: the `"./export"` export of the
 * package. Prometheus metrics served over HTTP and NATS JetStream messages
 * spooled to disk while the server is away; their npm clients are loaded only
 * when an exporter starts.
 *
 * May import: ground/, ffi/, lib/events/, lib/format/, lib/watch/.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { startMetrics } from "@procwatch/procwatch/export";
 *
 * using watcher = watch({ context: true });
 * const metrics = await startMetrics({ listen: "127.0.0.1:9464", watcher });
 * for await (const event of watcher) metrics.observe(event);
 * ```
 *
 * @module
 */

export {
  checkMetricsPermissions,
  checkNatsPermissions,
  defaultSpoolDir,
  type MetricsEndpoint,
  type MetricsOptions,
  type NatsExport,
  type NatsOptions,
  startMetrics,
  startNatsExport,
} from "./lazy.ts";
export {
  type HostPort,
  MissingPermissionError,
  parseListenAddress,
  parseNatsServers,
} from "./address.ts";
