/**
 * What procwatch knows about processes beyond the kernel's events: the
 * `"./proc"` export of the package. /proc readers, command lines, cgroups and
 * containers, namespaces, user names, pid checks and the watcher's own
 * priority.
 *
 * This room (lib/process/) holds the process table, the enrichment of events
 * with it and the process filters it applies, and the exec-capture worker
 * that names short-lived processes. What a package user gets here is what
 * this file re-exports; the rest of the room is the watcher's.
 *
 * May import: ground/, ffi/, lib/events/, lib/connector/.
 *
 * @example
 * ```ts
 * import { readProcStat } from "@procwatch/procwatch/proc";
 *
 * console.log(readProcStat(Deno.pid)?.comm); // "deno"
 * ```
 *
 * @module
 */

export { type ProcStat, type ProcStatus, readProcStat, readProcStatus } from "./proc_stat.ts";
export { processGone } from "./liveness.ts";
export { checkProcessId, PID_MAX_LIMIT, pidMax } from "./pids.ts";
export { commandLine, parseCmdline } from "./proc_parse.ts";
export {
  type CgroupAttribution,
  cgroupFromProcFile,
  type ContainerInfo,
  type ContainerRuntime,
  parseCgroupPath,
  shortContainerId,
} from "./cgroup_path.ts";
export {
  NAMESPACE_KINDS,
  type NamespaceInfo,
  type NamespaceInodes,
  type NamespaceKind,
  type Namespaces,
} from "./namespaces.ts";
export { UserNames } from "./users.ts";
export { type ProcessFilterOptions } from "./filters.ts";
export { type ProcessRecord, type ProcessTable } from "./table.ts";
export { TABLE_EVENT_TYPES } from "../events/event_types.ts";
export { listPids } from "../../ffi/proc_dir.ts";
export { processExists } from "../../ffi/process.ts";
export { type PriorityLevel, raisePriority } from "../../ffi/priority.ts";
