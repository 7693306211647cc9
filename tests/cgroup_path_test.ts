/**
 * Cgroup path parsing (lib/process/cgroup_path.ts) on paths as real hosts of each
 * runtime show them in /proc/PID/cgroup.
 */

import assert from "node:assert/strict";
import {
  type CgroupAttribution,
  cgroupFromProcFile,
  parseCgroupPath,
  shortContainerId,
} from "../lib/process/cgroup_path.ts";

const ID = "4f0a1c5e3b2d9f8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
const POD = "8d3f4c2a-1b6e-4d7f-9a0c-2e5b7d9f1a3c";
const POD_ = POD.replaceAll("-", "_");

/** [what, path, expected] — the paths are copied from the layouts of real hosts. */
const FIXTURES: [string, string, CgroupAttribution][] = [
  // docker, systemd cgroup driver (Ubuntu 22.04, cgroup v2)
  ["docker systemd", `/system.slice/docker-${ID}.scope`, {
    unit: `docker-${ID}.scope`,
    container: { runtime: "docker", id: ID },
  }],
  // docker, cgroupfs driver (Debian 10 hybrid, name=systemd line)
  ["docker cgroupfs", `/docker/${ID}`, { unit: null, container: { runtime: "docker", id: ID } }],
  // a container running systemd itself, host cgroup namespace
  ["docker with systemd inside", `/system.slice/docker-${ID}.scope/init.scope`, {
    unit: "init.scope",
    container: { runtime: "docker", id: ID },
  }],
  // rootless docker (user manager, systemd driver)
  [
    "docker rootless",
    `/user.slice/user-1000.slice/user@1000.service/user.slice/docker-${ID}.scope`,
    { unit: "user@1000.service", container: { runtime: "docker", id: ID } },
  ],
  // containerd CRI, systemd driver (kubeadm on Ubuntu, cgroup v2)
  [
    "containerd systemd",
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_}.slice/cri-containerd-${ID}.scope`,
    {
      unit: `cri-containerd-${ID}.scope`,
      container: { runtime: "containerd", id: ID, pod: POD },
    },
  ],
  // containerd CRI, kubelet with the systemd driver but containerd not (kind nodes)
  [
    "containerd colon form",
    `/system.slice/containerd.service/kubepods-besteffort-pod${POD_}.slice:cri-containerd:${ID}`,
    { unit: "containerd.service", container: { runtime: "containerd", id: ID, pod: POD } },
  ],
  // guaranteed QoS pods sit directly under kubepods.slice
  [
    "containerd guaranteed pod",
    `/kubepods.slice/kubepods-pod${POD_}.slice/cri-containerd-${ID}.scope`,
    {
      unit: `cri-containerd-${ID}.scope`,
      container: { runtime: "containerd", id: ID, pod: POD },
    },
  ],
  // cgroupfs driver (k3s, minikube): the runtime is not in the path
  ["kubepods cgroupfs", `/kubepods/burstable/pod${POD}/${ID}`, {
    unit: null,
    container: { runtime: "cri", id: ID, pod: POD },
  }],
  ["kubepods cgroupfs besteffort", `/kubepods/besteffort/pod${POD}/${ID}`, {
    unit: null,
    container: { runtime: "cri", id: ID, pod: POD },
  }],
  // CRI-O (OpenShift)
  [
    "crio",
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_}.slice/crio-${ID}.scope`,
    { unit: `crio-${ID}.scope`, container: { runtime: "crio", id: ID, pod: POD } },
  ],
  // CRI-O's monitor is not the container (its pod still is the pod)
  [
    "crio conmon",
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_}.slice/crio-conmon-${ID}.scope`,
    { unit: `crio-conmon-${ID}.scope`, container: null },
  ],
  // podman rootful (Fedora)
  ["podman machine.slice", `/machine.slice/libpod-${ID}.scope`, {
    unit: `libpod-${ID}.scope`,
    container: { runtime: "podman", id: ID },
  }],
  // podman with --systemd: the payload's own cgroup below
  ["podman container cgroup", `/machine.slice/libpod-${ID}.scope/container`, {
    unit: `libpod-${ID}.scope`,
    container: { runtime: "podman", id: ID },
  }],
  // podman rootless
  [
    "podman rootless",
    `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`,
    { unit: `user@1000.service`, container: { runtime: "podman", id: ID } },
  ],
  ["podman conmon", `/machine.slice/libpod-conmon-${ID}.scope`, {
    unit: `libpod-conmon-${ID}.scope`,
    container: null,
  }],
  ["podman cgroupfs", `/libpod_parent/libpod-${ID}`, {
    unit: null,
    container: { runtime: "podman", id: ID },
  }],
  // systemd units of the host
  ["system service", "/system.slice/ssh.service", { unit: "ssh.service", container: null }],
  ["template service", "/system.slice/system-getty.slice/getty@tty1.service", {
    unit: "getty@tty1.service",
    container: null,
  }],
  ["user service", "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", {
    unit: "foo.service",
    container: null,
  }],
  ["user manager itself", "/user.slice/user-1000.slice/user@1000.service/init.scope", {
    unit: "user@1000.service",
    container: null,
  }],
  ["login session", "/user.slice/user-1000.slice/session-3.scope", {
    unit: "session-3.scope",
    container: null,
  }],
  ["service sub-cgroup", "/system.slice/containerd.service/runtime", {
    unit: "containerd.service",
    container: null,
  }],
  ["pid 1", "/init.scope", { unit: "init.scope", container: null }],
  ["a slice is no unit", "/system.slice", { unit: null, container: null }],
  ["root", "/", { unit: null, container: null }],
  ["plain directory", "/procwatch-test/work", { unit: null, container: null }],
  // not 64 hex: no container (a name that only looks like one)
  ["short id", "/docker/4f0a1c5e3b2d", { unit: null, container: null }],
  ["upper-case hex", `/system.slice/docker-${ID.toUpperCase()}.scope`, {
    unit: `docker-${ID.toUpperCase()}.scope`,
    container: null,
  }],
];

for (const [what, path, expected] of FIXTURES) {
  Deno.test(`cgroup path: ${what}`, () => {
    assert.deepEqual(parseCgroupPath(path), expected, path);
  });
}

Deno.test("cgroup path: the innermost container wins (docker in docker)", () => {
  const inner = "b".repeat(64);
  assert.deepEqual(parseCgroupPath(`/docker/${ID}/docker/${inner}`).container, {
    runtime: "docker",
    id: inner,
  });
});

Deno.test("cgroup path: short ids are the first 12 digits", () => {
  assert.equal(shortContainerId(ID), "4f0a1c5e3b2d");
});

Deno.test("/proc/PID/cgroup: the v2 line, or on a hybrid host where it is '/' the name=systemd one", () => {
  // Pure v2 (Fedora, Ubuntu >= 21.10).
  assert.equal(cgroupFromProcFile("0::/system.slice/ssh.service\n"), "/system.slice/ssh.service");
  // Hybrid (Ubuntu 18.04, Debian 10): processes outside the v2 tree show "0::/".
  const hybrid = [
    "12:pids:/system.slice/docker-" + ID + ".scope",
    "11:memory:/system.slice/docker-" + ID + ".scope",
    "1:name=systemd:/system.slice/docker-" + ID + ".scope",
    "0::/",
    "",
  ].join("\n");
  assert.equal(cgroupFromProcFile(hybrid), `/system.slice/docker-${ID}.scope`);
  // Hybrid, but the process is in the v2 tree: its path there wins.
  const inV2 = "1:name=systemd:/user.slice\n0::/procwatch-test/foo.service\n";
  assert.equal(cgroupFromProcFile(inV2), "/procwatch-test/foo.service");
  // Pure v1 without a v2 line.
  assert.equal(cgroupFromProcFile("1:name=systemd:/init.scope\n"), "/init.scope");
  assert.equal(cgroupFromProcFile("2:cpu:/x\n"), null);
  assert.equal(cgroupFromProcFile(""), null);
  // Both "/": the host's root.
  assert.equal(cgroupFromProcFile("1:name=systemd:/\n0::/\n"), "/");
});
