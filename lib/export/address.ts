/**
 * Listen and connect addresses of the exporters, and the Deno permissions
 * they need — checked before anything starts, so that a missing permission
 * is one `procwatch:` line (exit 3) rather than a prompt or a stack trace.
 *
 * Kept free of the exporters' npm dependencies: the CLI imports this module
 * at start-up, the exporters only when asked for (dynamic import).
 *
 * @module
 */

import { ProcwatchError, UsageError } from "../../ground/errors.ts";
import { rerunCommand } from "../../ground/rerun.ts";

/**
 * A Deno permission an exporter needs is missing (exit code 3, like a
 * missing `--allow-ffi`).
 *
 * @example
 * ```ts
 * import { MissingPermissionError } from "@procwatch/procwatch/export";
 * console.log(new MissingPermissionError("--metrics needs --allow-net").code); // "DENO_PERMISSION"
 * ```
 */
export class MissingPermissionError extends ProcwatchError {
  /** Creates the error with the message the CLI prints after `procwatch: `. */
  constructor(message: string) {
    super(message, "DENO_PERMISSION");
    this.name = "MissingPermissionError";
  }
}

/**
 * A host and port to listen on or connect to.
 *
 * @example
 * ```ts
 * import { type HostPort, startMetrics } from "@procwatch/procwatch/export";
 * const listen: HostPort = { hostname: "127.0.0.1", port: 9464 };
 * const metrics = await startMetrics({ listen });
 * await metrics.close();
 * ```
 */
export interface HostPort {
  /** A host name or IP address (without brackets for IPv6). */
  hostname: string;
  /** A TCP port, 0–65535. */
  port: number;
}

/**
 * Parses `ADDR:PORT` for `--metrics`: `127.0.0.1:9464`, `[::1]:9464`,
 * `localhost:9464`, or `:9464` for every interface (`0.0.0.0`).
 *
 * @example
 * ```ts
 * import { parseListenAddress } from "@procwatch/procwatch/export";
 * console.log(parseListenAddress(":9464")); // { hostname: "0.0.0.0", port: 9464 }
 * ```
 *
 * @throws {UsageError} (code `"USAGE"`) for text that is not `ADDR:PORT`.
 */
export function parseListenAddress(text: string, option = "--metrics"): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]*)):(\d{1,5})$/.exec(text);
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port > 65535) {
    throw new UsageError(
      `${option} wants ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464 or :9464), got '${text}'`,
    );
  }
  const hostname = match[1] ?? (match[2] === "" ? "0.0.0.0" : match[2]);
  return { hostname, port };
}

/**
 * The servers of a NATS URL list (`nats://host:4222,host2:4222`; the scheme
 * and port are optional, 4222 by default), as host and port.
 *
 * @example
 * ```ts
 * import { parseNatsServers } from "@procwatch/procwatch/export";
 * console.log(parseNatsServers("nats://127.0.0.1")); // [{ hostname: "127.0.0.1", port: 4222 }]
 * ```
 *
 * @throws {UsageError} (code `"USAGE"`) for an item that is not a `nats://` or `tls://` URL.
 */
export function parseNatsServers(text: string): HostPort[] {
  const servers = text.split(",").map((item) => item.trim());
  return servers.map((item) => {
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(item) ? item : `nats://${item}`);
    } catch {
      throw new UsageError(`--nats wants a NATS URL such as nats://127.0.0.1:4222, got '${text}'`);
    }
    if (!["nats:", "tls:"].includes(url.protocol) || url.hostname === "") {
      throw new UsageError(`--nats wants a NATS URL such as nats://127.0.0.1:4222, got '${text}'`);
    }
    return {
      hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port === "" ? 4222 : Number(url.port),
    };
  });
}

/** `host:port`, with brackets for IPv6, as Deno's `--allow-net` wants it. */
export function hostPort({ hostname, port }: HostPort): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/** Whether a permission is granted, without ever prompting. */
export function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * Throws {@linkcode MissingPermissionError} naming the flags to add, unless
 * every descriptor is granted.
 *
 * @example
 * ```ts
 * import { requirePermissions } from "./address.ts";
 * requirePermissions("--metrics", [{ name: "net", host: "127.0.0.1:9464" }], ["--allow-net=127.0.0.1:9464"]);
 * ```
 */
export function requirePermissions(
  option: string,
  descriptors: readonly Deno.PermissionDescriptor[],
  flags: readonly string[],
): void {
  const missing = descriptors.filter((descriptor) => !granted(descriptor));
  if (missing.length === 0) return;
  const names = [...new Set(missing.map((descriptor) => `--allow-${descriptor.name}`))];
  throw new MissingPermissionError(
    `${option} needs ${names.join(" and ")}; run it as: ${rerunCommand(["--allow-ffi", ...flags])}`,
  );
}
