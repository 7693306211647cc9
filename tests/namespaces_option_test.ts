/**
 * `watch({ context: true, namespaces: false })` (what `procwatch watch`
 * without `-x` asks for): the process context without the eight /proc/PID/ns
 * reads per fork and exec, and `process.namespaces` null rather than stale;
 * the default still reads them, checked against the process's own links.
 */

import assert from "node:assert/strict";
import type { ProcEvent } from "../lib/events/events.ts";
import { collectUntil, watchAll } from "./support/kernel.ts";
import { serialKernelTest } from "./support/subprocess.ts";

serialKernelTest(
  "namespaces: false leaves process.namespaces null; the default reads them",
  async () => {
    await using without = watchAll({ events: ["fork", "exit"], context: true, namespaces: false });
    await using withNs = watchAll({ events: ["fork", "exit"], context: true });
    await Promise.all([without.ready, withNs.ready]);
    const child = new Deno.Command("sleep", { args: ["0.5"], stdout: "null" }).spawn();
    // The truth, from the process's own /proc entry while it sleeps: "net:[4026531840]".
    const kinds = ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"] as const;
    const links = kinds.map((kind) => Deno.readLinkSync(`/proc/${child.pid}/ns/${kind}`));
    const isExit = (event: ProcEvent) =>
      event.type === "exit" && event.pid === child.pid && event.tid === child.pid;
    const [seenWithout, seenWith] = await Promise.all([
      collectUntil(without, isExit, 20_000),
      collectUntil(withNs, isExit, 20_000),
    ]);
    await child.status;
    const forkOf = (seen: ProcEvent[]) =>
      seen.find((event) => event.type === "fork" && event.childPid === child.pid);
    const bare = forkOf(seenWithout);
    assert.ok(bare?.process, "the fork carries a context without namespaces too");
    assert.equal(bare.process.namespaces, null);
    assert.equal(bare.process.namespacesInherited, false);
    assert.equal(bare.process.ppid, Deno.pid, "the rest of the context is there");
    for (const event of seenWithout) assert.equal(event.process?.namespaces ?? null, null);
    const read = forkOf(seenWith)?.process?.namespaces;
    assert.ok(read, "the default reads the child's namespaces");
    // A link unreadable at that instant (the child mid-exec) is null: each one read is right.
    const compared = kinds.filter((kind, i) => {
      const info = read[kind];
      if (info !== null) assert.equal(`${kind}:[${info.inode}]`, links[i], JSON.stringify(read));
      return info !== null;
    });
    assert.ok(compared.length > 0, "at least one namespace read at the fork");
  },
);
