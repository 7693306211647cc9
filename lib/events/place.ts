/**
 * Where a process runs, as events report it (`ProcessInfo.container`,
 * `ProcessInfo.namespaces`): the types only. lib/process/ reads them from
 * /proc (cgroup_path.ts, namespaces.ts).
 *
 * @module
 */

/**
 * A container runtime a cgroup path can name. `cri`: a bare id under kubepods
 * (any CRI runtime).
 *
 * @example
 * ```ts
 * import { type ContainerRuntime, parseCgroupPath } from "@procwatch/procwatch/proc";
 * const runtime: ContainerRuntime | undefined = parseCgroupPath(
 *   "/system.slice/docker-4f1c0a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f.scope",
 * ).container?.runtime;
 * console.log(runtime); // "docker"
 * ```
 */
export type ContainerRuntime = "docker" | "containerd" | "crio" | "podman" | "cri";

/**
 * The container a process runs in, from its cgroup path.
 *
 * @example
 * ```ts
 * import { parseCgroupPath } from "@procwatch/procwatch/proc";
 * const id = "a".repeat(64);
 * console.log(parseCgroupPath(`/system.slice/docker-${id}.scope`).container?.runtime); // "docker"
 * ```
 */
export interface ContainerInfo {
  /** Which runtime's layout the path has. */
  runtime: ContainerRuntime;
  /** The container id: 64 lower-case hex digits (`docker ps` shows its first 12). */
  id: string;
  /** The Kubernetes pod uid (`1b2c…-…`), when the path is under `kubepods`. */
  pod?: string;
}

/**
 * The namespace kinds reported, in the order records keep them.
 *
 * @example
 * ```ts
 * import { NAMESPACE_KINDS } from "@procwatch/procwatch/proc";
 * console.log(NAMESPACE_KINDS.map((kind) => `/proc/self/ns/${kind}`));
 * ```
 */
export const NAMESPACE_KINDS = ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"] as const;

/**
 * One of {@linkcode NAMESPACE_KINDS}.
 *
 * @example
 * ```ts
 * import type { NamespaceKind } from "@procwatch/procwatch/proc";
 * const kind: NamespaceKind = "net";
 * console.log(kind);
 * ```
 */
export type NamespaceKind = typeof NAMESPACE_KINDS[number];

/**
 * One namespace of a process.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ context: true })) {
 *   const net = event.process?.namespaces?.net;
 *   if (net && !net.host) console.log(event.process?.pid, "has its own network", net.inode);
 * }
 * ```
 */
export interface NamespaceInfo {
  /** The namespace's inode number (`ls -i /proc/PID/ns/`, `lsns`). */
  inode: number;
  /** Whether it is the one pid 1 is in. */
  host: boolean;
}

/**
 * Per kind, the namespace (`null`: that link could not be read, e.g. no such
 * namespace type).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import type { Namespaces } from "@procwatch/procwatch/proc";
 * for await (const event of watch({ context: true, events: ["exec"] })) {
 *   const namespaces: Namespaces | null | undefined = event.process?.namespaces;
 *   if (namespaces?.pid && !namespaces.pid.host) console.log(event.process?.pid, "runs in a pid namespace");
 * }
 * ```
 */
export type Namespaces = Record<NamespaceKind, NamespaceInfo | null>;
