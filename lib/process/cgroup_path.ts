/**
 * What a cgroup path says about a process: its systemd unit and its
 * container. Pure: it parses the path of the `0::` line of /proc/PID/cgroup
 * (or, on hybrid hosts, of the `name=systemd` line); nothing is read.
 *
 * The layouts are those the runtimes create (each names the container's
 * cgroup after the container's 64-hex id):
 *
 * - docker, systemd driver: `/system.slice/docker-<id>.scope`;
 *   cgroupfs driver: `/docker/<id>`;
 * - containerd (CRI), systemd driver:
 *   `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`,
 *   or as containerd names it when it runs under systemd without the driver:
 *   `/system.slice/containerd.service/kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`;
 *   cgroupfs driver: `/kubepods/burstable/pod<uid>/<id>`;
 * - CRI-O: `crio-<id>.scope` (its monitor, `crio-conmon-<id>.scope`, is not
 *   the container);
 * - podman: `/machine.slice/libpod-<id>.scope`, rootless under
 *   `user@UID.service`, cgroupfs driver `/libpod_parent/libpod-<id>` (its
 *   monitor `libpod-conmon-<id>.scope` is not the container).
 *
 * Kubernetes' systemd driver writes the pod uid with `_` for `-`
 * (`kubepods-besteffort-pod1b2c_…slice`, since `-` is systemd's slice
 * separator); it is given back with `-`, as the API server shows it.
 *
 * @module
 */

import type { ContainerInfo, ContainerRuntime } from "../events/place.ts";
export type { ContainerInfo, ContainerRuntime };

/**
 * What {@linkcode parseCgroupPath} finds.
 *
 * @example
 * ```ts
 * import { parseCgroupPath } from "@procwatch/procwatch/proc";
 * console.log(parseCgroupPath("/system.slice/ssh.service")); // { unit: "ssh.service", container: null }
 * ```
 */
export interface CgroupAttribution {
  /** The systemd unit: the deepest `.service`, else the deepest `.scope`; `null` when none. */
  unit: string | null;
  /** The container; `null` on the host. */
  container: ContainerInfo | null;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** `<prefix>-<64 hex>.scope` of the systemd drivers. */
const SCOPE = /^(docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$/;
/** `<slice>:cri-containerd:<id>` (containerd under systemd, cgroupfs driver in kubelet). */
const CONTAINERD_COLON = /:cri-containerd:([0-9a-f]{64})$/;
/** `libpod-<id>` of podman's cgroupfs driver. */
const LIBPOD_PLAIN = /^libpod-([0-9a-f]{64})$/;
/** `crio-<id>` of CRI-O's cgroupfs driver. */
const CRIO_PLAIN = /^crio-([0-9a-f]{64})$/;
/** A pod's cgroup: `pod<uid>` (cgroupfs) or `kubepods[-qos]-pod<uid_with_underscores>.slice`. */
const POD = /^(?:pod([0-9a-f-]{36})|kubepods(?:-[a-z]+)?-pod([0-9a-f_]{36})\.slice)$/;

const RUNTIME_OF_PREFIX: Record<string, ContainerRuntime> = {
  "docker": "docker",
  "cri-containerd": "containerd",
  "crio": "crio",
  "libpod": "podman",
};

/**
 * The unit and container a cgroup path names. The innermost container wins
 * (a container's own sub-cgroups, docker-in-docker); a path that names none
 * is the host's (`container: null`).
 *
 * @example
 * ```ts
 * import { parseCgroupPath } from "@procwatch/procwatch/proc";
 * const id = "0123456789abcdef".repeat(4);
 * const pod = "kubepods-burstable-pod1b2c3d4e_0000_4000_8000_123456789abc.slice";
 * const found = parseCgroupPath(
 *   `/kubepods.slice/kubepods-burstable.slice/${pod}/cri-containerd-${id}.scope`,
 * );
 * console.log(found.container); // { runtime: "containerd", id, pod: "1b2c3d4e-0000-4000-8000-123456789abc" }
 * ```
 */
export function parseCgroupPath(path: string): CgroupAttribution {
  const parts = path.split("/").filter((part) => part !== "");
  let service: string | null = null;
  let scope: string | null = null;
  let container: ContainerInfo | null = null;
  let pod: string | null = null;
  let underKubepods = false;
  let underDocker = false;
  for (const part of parts) {
    if (part.endsWith(".service") && !part.includes(":")) service = part;
    else if (part.endsWith(".scope") && !part.includes(":")) scope = part;
    if (part === "kubepods" || part.startsWith("kubepods.") || part.startsWith("kubepods-")) {
      underKubepods = true;
    }
    // The colon form carries the pod's slice before its first ':'.
    const podMatch = POD.exec(part.split(":")[0]);
    if (podMatch !== null) {
      pod = podMatch[1] ?? podMatch[2].replaceAll("_", "-");
      underKubepods = true;
    }
    const found = containerOf(part, underKubepods, underDocker);
    if (found !== null) {
      container = found;
      if (underKubepods && pod !== null) container.pod = pod;
    }
    underDocker = part === "docker";
  }
  return { unit: service ?? scope, container };
}

function containerOf(
  part: string,
  underKubepods: boolean,
  underDocker: boolean,
): ContainerInfo | null {
  const scope = SCOPE.exec(part);
  if (scope !== null) return { runtime: RUNTIME_OF_PREFIX[scope[1]], id: scope[2] };
  const colon = CONTAINERD_COLON.exec(part);
  if (colon !== null) return { runtime: "containerd", id: colon[1] };
  const libpod = LIBPOD_PLAIN.exec(part);
  if (libpod !== null) return { runtime: "podman", id: libpod[1] };
  const crio = CRIO_PLAIN.exec(part);
  if (crio !== null) return { runtime: "crio", id: crio[1] };
  if (HEX64.test(part)) {
    if (underDocker) return { runtime: "docker", id: part };
    if (underKubepods) return { runtime: "cri", id: part };
  }
  return null;
}

/**
 * The cgroup path of a process from the text of /proc/PID/cgroup: the v2
 * line (`0::/path`); on a hybrid host, where that line is `/` (the process
 * is not in the v2 tree: systemd keeps it in its v1 `name=systemd`
 * hierarchy), the `name=systemd` line's path. `null` when neither exists.
 *
 * @example
 * ```ts
 * import { cgroupFromProcFile } from "@procwatch/procwatch/proc";
 * console.log(cgroupFromProcFile("1:name=systemd:/system.slice/cron.service\n0::/\n"));
 * // "/system.slice/cron.service"
 * ```
 */
export function cgroupFromProcFile(text: string): string | null {
  let unified: string | null = null;
  let systemd: string | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("0::")) unified = line.slice(3);
    else {
      const first = line.indexOf(":");
      const second = line.indexOf(":", first + 1);
      if (first > 0 && second > first && line.slice(first + 1, second) === "name=systemd") {
        systemd = line.slice(second + 1);
      }
    }
  }
  if (unified !== null && (unified !== "/" || systemd === null)) return unified;
  return systemd ?? unified;
}

/**
 * The short container id people see (`docker ps`, falco's `container.id`): the first 12 digits.
 *
 * @example
 * ```ts
 * import { shortContainerId } from "@procwatch/procwatch/proc";
 * console.log(shortContainerId("0123456789abcdef".repeat(4))); // "0123456789ab"
 * ```
 */
export function shortContainerId(id: string): string {
  return id.slice(0, 12);
}
