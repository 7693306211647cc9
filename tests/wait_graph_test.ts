/**
 * What `procwatch wait` loads before it is armed: its start-up is mostly
 * module loading, so its graph leaves out what it does not use — commander
 * (plain spellings run without it), the package's whole entry, and the
 * process context of lib/process/ (table, enrichment, exec capture), which
 * watchers get through a slot the entries fill (lib/watch/context.ts).
 */

import assert from "node:assert/strict";
import { ROOT } from "./support/processes.ts";
import { runDenoCommand } from "./support/subprocess.ts";

/** The modules evaluated when `entry` is imported: its graph through value imports only. */
async function runtimeGraph(entry: string): Promise<Set<string>> {
  const output = await runDenoCommand(["info", "--json", `${ROOT}${entry}`]);
  assert.equal(output.code, 0, output.stderr);
  const info = JSON.parse(output.stdout) as {
    roots: string[];
    redirects: Record<string, string>;
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
  };
  const modules = new Map(info.modules.map((module) => [module.specifier, module]));
  const seen = new Set<string>();
  const pending = [...info.roots];
  while (pending.length > 0) {
    const specifier = pending.pop()!;
    const resolved = info.redirects[specifier] ?? specifier;
    if (seen.has(resolved)) continue;
    seen.add(resolved);
    // `import type` edges come as `type`, not `code`: nothing of them is evaluated.
    for (const dependency of modules.get(resolved)?.dependencies ?? []) {
      if (dependency.code !== undefined) pending.push(dependency.code.specifier);
    }
  }
  return new Set([...seen].map((specifier) => specifier.replace(`file://${ROOT}`, "")));
}

Deno.test("wait's graph: no commander, no package entry, no process context", async () => {
  const graph = await runtimeGraph("cli/wait.ts");
  assert.ok(graph.has("lib/wait/wait.ts") && graph.has("lib/watch/watcher.ts"), [...graph].join());
  const absent = [
    "mod.ts",
    "lib/watch/mod.ts",
    "lib/watch/process_context.ts",
    "lib/process/mod.ts",
    "lib/process/enrich.ts",
    "lib/process/table.ts",
    "lib/process/exec_capture.ts",
    "lib/process/exec_capture_worker.ts",
  ];
  for (const module of absent) assert.ok(!graph.has(module), `cli/wait.ts loads ${module}`);
  const npm = [...graph].filter((module) => module.startsWith("npm:"));
  assert.deepEqual(npm, [], "commander (or any npm package) loads only for commander's spellings");
});

Deno.test("the package's entries plug the process context in; a watcher without it says so", async () => {
  for (const entry of ["mod.ts", "lib/watch/mod.ts"]) {
    assert.ok((await runtimeGraph(entry)).has("lib/watch/process_context.ts"), entry);
  }
  // watcher.ts alone (as lib/wait uses it): asking for context is an error naming the cause.
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/bare.ts`;
    await Deno.writeTextFile(
      script,
      `import { watch } from ${JSON.stringify(`file://${ROOT}lib/watch/watcher.ts`)};
try {
  watch({ context: true, handleSignals: false });
  console.log("no error");
} catch (error) {
  console.log(error.name, error.code, error.message);
}
`,
    );
    const output = await runDenoCommand(["run", "--allow-ffi", script]);
    assert.equal(output.code, 0, output.stderr);
    assert.match(output.stdout, /^ProcwatchError SYSTEM the process context is not loaded/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
