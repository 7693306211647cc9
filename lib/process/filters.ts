/**
 * Process filters of `watch()` and the CLI, checked and compiled once:
 * sub-tree, name, command line, user, parent, and cgroup, unit and container.
 *
 * @module
 */

import { processExists } from "../../ffi/process.ts";
import { NoSuchProcessError, UsageError } from "../../ground/errors.ts";
import type { UserNames } from "./users.ts";

/**
 * Filters on the process an event is about; they compose (all must match).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 *
 * for await (const event of watch({ tree: 1234, comm: ["make"], failedOnly: true })) console.log(event);
 * ```
 */
export interface ProcessFilterOptions {
  /**
   * Only this process and its descendants, existing and future (kmonitor's monitor_pid).
   *
   * @default {undefined} (no sub-tree: every process)
   */
  tree?: number;
  /**
   * Only processes with one of these names (`comm`, compared on its first 15 bytes).
   *
   * @default {undefined} (any name)
   */
  comm?: string | readonly string[];
  /**
   * Only processes whose command line (arguments joined by spaces) matches.
   *
   * @default {undefined} (any command line)
   */
  match?: RegExp | string;
  /**
   * Only processes whose effective user is this one (name or uid), or one of these.
   *
   * @default {undefined} (any user)
   */
  uid?: number | string | readonly (number | string)[];
  /**
   * Only children of this process.
   *
   * @default {undefined} (any parent)
   */
  ppid?: number;
  /**
   * Only processes in this cgroup or below it (`/system.slice` takes
   * `/system.slice/cron.service`, not `/system.slice2`); see `ProcessInfo.cgroup`.
   *
   * @default {undefined} (any cgroup)
   */
  cgroup?: string;
  /**
   * Only processes of this systemd unit (`ssh.service`; a name without a suffix means `.service`).
   *
   * @default {undefined} (any unit, or none)
   */
  unit?: string;
  /**
   * Only processes in a container whose id starts with this (hex, as `docker ps`
   * shows it); `"any"`: in any container; `"host"`: in none.
   *
   * @default {undefined} (in a container or not)
   */
  container?: string;
}

/** Filters ready to apply. */
export interface CompiledFilters {
  tree: number | null;
  comm: ReadonlySet<string> | null;
  match: RegExp | null;
  uid: ReadonlySet<number> | null;
  ppid: number | null;
  /** Cgroup path prefix, without a trailing `/` (`""` for the root: everything). */
  cgroup?: string | null;
  unit?: string | null;
  /** `any`, `host`, or a lower-case hex id prefix. */
  container?: "any" | "host" | { prefix: string } | null;
}

/**
 * Checks and compiles filter options. Throws {@linkcode UsageError} for bad
 * input (unknown user, bad regex, bad pid) and {@linkcode NoSuchProcessError}
 * when the `tree` root does not exist.
 *
 * @example
 * ```ts
 * import { compileFilters } from "./filters.ts";
 * import { UserNames } from "@procwatch/procwatch/proc";
 * const filters = compileFilters({ comm: "sshd", uid: "root" }, new UserNames());
 * console.log(filters.uid); // Set(1) { 0 }
 * ```
 */
export function compileFilters(options: ProcessFilterOptions, users: UserNames): CompiledFilters {
  const tree = options.tree === undefined ? null : checkPid(options.tree, "tree");
  if (tree !== null && !processExists(tree)) throw new NoSuchProcessError(tree);
  const ppid = options.ppid === undefined ? null : checkPid(options.ppid, "ppid");
  let comm: Set<string> | null = null;
  if (options.comm !== undefined) {
    const names = typeof options.comm === "string" ? [options.comm] : options.comm;
    if (names.length === 0 || names.some((name) => name === "")) {
      throw new UsageError("empty process name in comm filter");
    }
    comm = new Set(names.map(truncateComm));
  }
  let match: RegExp | null = null;
  if (options.match instanceof RegExp) match = options.match;
  else if (options.match !== undefined) {
    try {
      match = new RegExp(options.match);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new UsageError(`invalid regular expression '${options.match}': ${reason}`);
    }
  }
  let uid: Set<number> | null = null;
  if (options.uid !== undefined) {
    const wanted = typeof options.uid === "object" ? options.uid : [options.uid];
    if (wanted.length === 0) throw new UsageError("empty user list in uid filter");
    uid = new Set(wanted.map((user) => users.resolve(user)));
  }
  let cgroup: string | null = null;
  if (options.cgroup !== undefined) {
    if (typeof options.cgroup !== "string" || !options.cgroup.startsWith("/")) {
      throw new UsageError(`invalid cgroup '${options.cgroup}': a path starting with '/'`);
    }
    cgroup = options.cgroup.replace(/\/+$/, "");
  }
  let unit: string | null = null;
  if (options.unit !== undefined) {
    if (typeof options.unit !== "string" || options.unit === "" || options.unit.includes("/")) {
      throw new UsageError(`invalid unit '${options.unit}': a systemd unit name`);
    }
    unit = options.unit.includes(".") ? options.unit : `${options.unit}.service`;
  }
  let container: CompiledFilters["container"] = null;
  if (options.container !== undefined) {
    const wanted = String(options.container).toLowerCase();
    if (wanted === "any" || wanted === "host") container = wanted;
    else if (/^[0-9a-f]{1,64}$/.test(wanted)) container = { prefix: wanted };
    else {
      throw new UsageError(
        `invalid container '${options.container}': a hex id prefix, 'any' or 'host'`,
      );
    }
  }
  return { tree, comm, match, uid, ppid, cgroup, unit, container };
}

/**
 * Whether a process's cgroup passes the cgroup, unit and container filters
 * (true when none is set). `cgroup` `null`: not known, which passes nothing;
 * `attribution`: the unit and container that cgroup belongs to.
 *
 * @example
 * ```ts
 * import { compileFilters, matchesPlace } from "./filters.ts";
 * import { UserNames } from "@procwatch/procwatch/proc";
 * const filters = compileFilters({ unit: "cron" }, new UserNames());
 * const attribution = { unit: "cron.service", container: null };
 * console.log(matchesPlace(filters, "/system.slice/cron.service", attribution)); // true
 * ```
 */
export function matchesPlace(
  filters: CompiledFilters,
  cgroup: string | null,
  attribution: { unit: string | null; container: { id: string } | null } | null,
): boolean {
  if (!hasPlaceFilters(filters)) return true;
  if (cgroup === null || attribution === null) return false;
  if (
    filters.cgroup != null && cgroup !== filters.cgroup &&
    !cgroup.startsWith(`${filters.cgroup}/`)
  ) {
    return false;
  }
  if (filters.unit != null && attribution.unit !== filters.unit) return false;
  const container = filters.container;
  if (container != null) {
    if (container === "host") return attribution.container === null;
    if (attribution.container === null) return false;
    if (container !== "any" && !attribution.container.id.startsWith(container.prefix)) {
      return false;
    }
  }
  return true;
}

/** Whether a cgroup, unit or container filter is set. */
export function hasPlaceFilters(filters: CompiledFilters): boolean {
  return filters.cgroup != null || filters.unit != null || filters.container != null;
}

/** Whether any filter is set. */
export function hasFilters(filters: CompiledFilters): boolean {
  return filters.tree !== null || filters.comm !== null || filters.match !== null ||
    filters.uid !== null || filters.ppid !== null || hasPlaceFilters(filters);
}

function checkPid(pid: number, what: string): number {
  if (!Number.isInteger(pid) || pid <= 0 || pid > 4194304) {
    throw new UsageError(`invalid ${what} pid: ${pid}`);
  }
  return pid;
}

/** The kernel keeps 15 bytes of a name (TASK_COMM_LEN 16 with the NUL). */
function truncateComm(name: string): string {
  const bytes = new TextEncoder().encode(name);
  return bytes.length <= 15 ? name : new TextDecoder().decode(bytes.subarray(0, 15));
}
