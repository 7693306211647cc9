/**
 * Environment errors end with one line on stderr and a
 * documented exit code (README "Exit codes"), never a stack trace.
 *
 * Real paths: `unshare -n` (ECONNREFUSED → 6), no `--allow-ffi` (→ 3, with
 * the exact command), `unshare -U -r` where the kernel silently ignores
 * LISTEN from a non-initial user namespace (no ACK → 5), and a seccomp
 * sandbox that makes `socket(AF_NETLINK)` fail with EPERM (→ 4) or with
 * EPROTONOSUPPORT as on a kernel without the connector (→ 5). The kernel's
 * own refusal of LISTEN (an ACK carrying EPERM, kernels before 6.6) cannot
 * be produced on this 6.18 kernel, which lets anyone listen; it is checked at
 * the level of `listen()` with a pump that reports such an ACK, and the errno
 * mapping at the level of `explain()`.
 */

import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../ffi/libc.ts";
import {
  NetworkNamespaceError,
  PermissionError,
  ProcEventsUnavailableError,
} from "../ground/errors.ts";
import { ExitCode, exitCodeOf } from "../cli/exit_codes.ts";
import { explain, ignore, listen, openSocket } from "../lib/connector/subscription.ts";
import { PROC_EVENT_ALL } from "../ground/cn_proc.ts";
import { kernelTest } from "./support/kernel.ts";

const root = new URL("..", import.meta.url).pathname;
const denyNetlink = new URL("./support/deny_netlink.ts", import.meta.url).pathname;

async function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string[]; stdout: string }> {
  const output = await new Deno.Command(command, {
    args,
    cwd: root,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).split("\n").filter((line) => line);
  return { code: output.code, stderr, stdout: new TextDecoder().decode(output.stdout) };
}

const deno = Deno.execPath();

kernelTest("inside `unshare -n`: one line about network namespaces, exit 6", async () => {
  const result = await run("unshare", ["-n", deno, "run", "--allow-ffi", "cli.ts", "watch"]);
  assert.equal(result.code, ExitCode.NETWORK_NAMESPACE);
  assert.equal(result.stderr.length, 1, result.stderr.join("\n"));
  assert.match(result.stderr[0], /^procwatch: .*ECONNREFUSED.*network namespace/);
  assert.equal(result.stdout, "");
});

kernelTest("a script inside `unshare -n` keeps exit 6 and gets one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/s.ts`,
      `import { watch } from "${new URL("../mod.ts", import.meta.url).href}";\nwatch();\n`,
    );
    const result = await run("unshare", ["-n", deno, "run", "-A", "cli.ts", "run", `${dir}/s.ts`]);
    assert.equal(result.code, ExitCode.NETWORK_NAMESPACE);
    assert.equal(result.stderr.length, 1, result.stderr.join("\n"));
    assert.match(result.stderr[0], /network namespace.*\(.*s\.ts:2:1\)$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without --allow-ffi: one line with the exact command to run, exit 3", async () => {
  const watch = await run(deno, ["run", "--no-prompt", "cli.ts", "watch", "--json", "-e", "exit"]);
  assert.equal(watch.code, ExitCode.NO_FFI);
  assert.deepEqual(watch.stderr, [
    "procwatch: needs FFI access to talk to the kernel; run it as: deno run --allow-ffi cli.ts watch --json -e exit",
  ]);
  const withPid = await run(deno, ["run", "--no-prompt", "cli.ts", "watch", "-p", "1"]);
  assert.equal(withPid.code, ExitCode.NO_FFI);
  assert.deepEqual(withPid.stderr, [
    "procwatch: needs FFI access to talk to the kernel; run it as: deno run --allow-ffi cli.ts watch -p 1",
  ]);
});

kernelTest("in a user namespace the kernel ignores LISTEN: one line, exit 5", async () => {
  const result = await run("unshare", ["-U", "-r", deno, "run", "--allow-ffi", "cli.ts", "watch"]);
  assert.equal(result.code, ExitCode.UNAVAILABLE);
  assert.equal(result.stderr.length, 1, result.stderr.join("\n"));
  assert.match(
    result.stderr[0],
    /^procwatch: proc events unavailable: the kernel did not acknowledge/,
  );
});

kernelTest("a sandbox that refuses netlink sockets (EPERM): one line, exit 4", async () => {
  const result = await run(deno, [
    "run",
    "-A",
    denyNetlink,
    "run",
    "--allow-ffi",
    "cli.ts",
    "watch",
  ]);
  assert.equal(result.code, ExitCode.PERMISSION);
  assert.equal(result.stderr.length, 1, result.stderr.join("\n"));
  assert.match(result.stderr[0], /^procwatch: permission denied opening the proc connector/);
});

Deno.test("errno mapping: EPERM/EACCES → 4, ECONNREFUSED → 6, no connector → 5", () => {
  const cases: [number, new (...args: never[]) => Error, number][] = [
    [Errno.EPERM, PermissionError, ExitCode.PERMISSION],
    [Errno.EACCES, PermissionError, ExitCode.PERMISSION],
    [Errno.ECONNREFUSED, NetworkNamespaceError, ExitCode.NETWORK_NAMESPACE],
    [Errno.EPROTONOSUPPORT, ProcEventsUnavailableError, ExitCode.UNAVAILABLE],
    [Errno.EAFNOSUPPORT, ProcEventsUnavailableError, ExitCode.UNAVAILABLE],
  ];
  for (const [code, type, exitCode] of cases) {
    const explained = explain(new ErrnoError("socket", code));
    assert.ok(explained instanceof type, `errno ${code}`);
    assert.equal(exitCodeOf((explained as PermissionError).code), exitCode);
    assert.ok(!(explained as Error).message.includes("\n"));
  }
  const other = new ErrnoError("socket", Errno.EMFILE);
  assert.equal(explain(other), other);
});

kernelTest("the kernel answering LISTEN with EPERM (kernels < 6.6) becomes PermissionError", () => {
  const socket = openSocket(1 << 16);
  try {
    assert.throws(
      () => listen(socket, PROC_EVENT_ALL, false, () => ({ seen: true, error: Errno.EPERM })),
      PermissionError,
    );
  } finally {
    ignore(socket); // the LISTEN itself reached the kernel: withdraw it
    socket.close();
  }
  return Promise.resolve();
});

kernelTest("a kernel without the connector (EPROTONOSUPPORT): one line, exit 5", async () => {
  const script = `import { Errno } from "${new URL("../ffi/libc.ts", import.meta.url).href}";
import { denySocketFamily, replaceProcess } from "${
    new URL("./support/ffi/sandbox.ts", import.meta.url).href
  }";
denySocketFamily(16, Errno.EPROTONOSUPPORT);
replaceProcess(Deno.execPath(), ["deno", "run", "--allow-ffi", "cli.ts", "watch"], Deno.env.toObject());
`;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/deny.ts`, script);
    const result = await run(deno, ["run", "-A", `${dir}/deny.ts`]);
    assert.equal(result.code, ExitCode.UNAVAILABLE);
    assert.equal(result.stderr.length, 1, result.stderr.join("\n"));
    assert.match(
      result.stderr[0],
      /^procwatch: proc events unavailable: this kernel has no netlink connector/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
