/**
 * The layers README's "Architecture" section draws, held against the real
 * module graph (`deno info --json`, so comments and doc examples do not
 * count and dynamic `import()` does):
 *
 *   ground/ ← ffi/ ← lib/ ← mod.ts and deno.json's exports ← cli/, cli.ts, scripts/
 *
 * Each layer imports only downwards; cli/ and scripts/ reach the package
 * through its public exports only; nothing of the product imports tests/ or
 * bench/ (they carry their own FFI helpers). Inside lib/, the rooms import
 * one another as {@linkcode ROOMS} says (no cycles), and each room's mod.ts
 * says the same in its "May import:" line.
 */

import assert from "node:assert/strict";
import { fromFileUrl, relativeTo } from "./support/paths.ts";
import { runDenoCommand } from "./support/subprocess.ts";

const ROOT = new URL("../", import.meta.url);
const ROOT_PATH = fromFileUrl(ROOT);

/**
 * What each room of lib/ may import besides itself: ground/, ffi/ and the
 * rooms below it. An order without cycles: events, connector, process, then
 * watch and format, then wait and export.
 */
const ROOMS: Record<string, readonly string[]> = {
  events: ["ground", "ffi"],
  connector: ["ground", "ffi", "events"],
  process: ["ground", "ffi", "events", "connector"],
  watch: ["ground", "ffi", "events", "connector", "process"],
  format: ["ground", "ffi", "events", "process"],
  wait: ["ground", "ffi", "events", "connector", "process", "watch"],
  export: ["ground", "ffi", "events", "format", "watch"],
};

/** The room of a file under lib/ ("watch" for lib/watch/pump.ts), else null. */
function roomOf(file: string): string | null {
  const parts = file.split("/");
  return parts[0] === "lib" && parts.length > 2 ? parts[1] : null;
}

/** Product files: every .ts file outside tests/ and bench/. */
async function productFiles(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(`${ROOT_PATH}${dir}`)) {
      const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory) {
        if (!["tests", "bench", "node_modules", ".git"].includes(path)) await walk(path);
      } else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  await walk("");
  return files.sort();
}

/** The public exports of deno.json, as paths relative to the root. */
async function exportTargets(): Promise<Set<string>> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT_PATH}deno.json`)) as {
    exports: Record<string, string>;
  };
  return new Set(Object.values(config.exports).map((path) => path.replace(/^\.\//, "")));
}

/** Every import edge among the product's files: importer → imported (root-relative paths, or a URL). */
async function importEdges(files: string[]): Promise<Map<string, string[]>> {
  const dir = await Deno.makeTempDir();
  try {
    const all = `${dir}/all.ts`;
    await Deno.writeTextFile(
      all,
      files.map((file) => `import ${JSON.stringify(new URL(file, ROOT).href)};\n`).join(""),
    );
    const output = await runDenoCommand([
      "info",
      "--json",
      "--config",
      `${ROOT_PATH}deno.json`,
      all,
    ]);
    assert.equal(output.code, 0, output.stderr);
    const info = JSON.parse(output.stdout) as {
      redirects: Record<string, string>;
      modules: {
        specifier: string;
        dependencies?: {
          specifier: string;
          code?: { specifier: string };
          type?: { specifier: string };
        }[];
      }[];
    };
    const edges = new Map<string, string[]>();
    for (const module of info.modules) {
      const from = relativeTo(ROOT, module.specifier);
      if (from === null || !files.includes(from)) continue;
      edges.set(
        from,
        (module.dependencies ?? []).flatMap((dependency) =>
          // A value import and a type-only import of the same specifier resolve alike; a
          // type-only import counts as much as a value import for the layers.
          [dependency.code?.specifier, dependency.type?.specifier]
            .filter((resolved) => resolved !== undefined)
            .map((resolved) => {
              const target = info.redirects[resolved] ?? resolved;
              return relativeTo(ROOT, target) ?? target;
            })
        ),
      );
    }
    return edges;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The layer a product file belongs to. */
function layerOf(file: string): string {
  const top = file.split("/")[0];
  if (file === "cli.ts") return "cli";
  if (file === "mod.ts") return "entry";
  return top;
}

/**
 * Whether `from` may import `to` (both root-relative, or `to` an npm:/node:
 * URL). Returns why not, or null.
 */
function breaks(from: string, to: string, exports: Set<string>): string | null {
  if (to.startsWith("npm:") || to.startsWith("node:") || to.startsWith("https://jsr")) {
    return ["ground", "ffi"].includes(layerOf(from))
      ? `${layerOf(from)}/ imports no package`
      : null;
  }
  if (to.startsWith("tests/") || to.startsWith("bench/")) {
    return "the product never imports tests/ or bench/";
  }
  const fromLayer = layerOf(from);
  const toLayer = layerOf(to);
  switch (fromLayer) {
    case "ground":
      return toLayer === "ground" ? null : "ground/ imports only ground/";
    case "ffi":
      return ["ground", "ffi"].includes(toLayer) ? null : "ffi/ imports only ground/ and ffi/";
    case "lib": {
      if (!["ground", "ffi", "lib"].includes(toLayer)) {
        return "lib/ imports only ground/, ffi/ and lib/";
      }
      const room = roomOf(from);
      const target = roomOf(to);
      if (room === null || !(room in ROOMS)) return `lib/${room ?? ""} is no room ROOMS names`;
      if (target === null || target === room) return null;
      return ROOMS[room].includes(target)
        ? null
        : `lib/${room}/ imports only ${ROOMS[room].map((name) => `${name}/`).join(", ")}`;
    }
    case "entry":
      return ["ground", "ffi", "lib"].includes(toLayer)
        ? null
        : "mod.ts imports only ground/, ffi/ and lib/";
    case "cli":
      if (to.startsWith("cli/") || to === "cli.ts" || exports.has(to) || toLayer === "ground") {
        return null;
      }
      return "cli/ imports only cli/, ground/ and the package's exports (deno.json)";
    case "scripts":
      if (toLayer === "scripts" || exports.has(to)) return null;
      return "scripts/ import only the package's exports (deno.json) and scripts/";
    default:
      return `${fromLayer}/ is no layer README's architecture names`;
  }
}

Deno.test("layers: every import of the product goes downwards; cli/ and scripts/ use the public exports", async () => {
  const files = await productFiles();
  const exports = await exportTargets();
  const edges = await importEdges(files);
  // Every product file was seen: the check below looks at the whole product.
  assert.deepEqual(files.filter((file) => !edges.has(file)), []);
  const broken: string[] = [];
  for (const [from, targets] of edges) {
    for (const to of targets) {
      const why = breaks(from, to, exports);
      if (why !== null) broken.push(`${from} imports ${to}: ${why}`);
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("layers: each room's mod.ts says what it may import, as the rule has it", async () => {
  const rooms = [...Deno.readDirSync(`${ROOT_PATH}lib`)].filter((entry) => entry.isDirectory)
    .map((entry) => entry.name).sort();
  assert.deepEqual(rooms, Object.keys(ROOMS).sort(), "every room of lib/ is in ROOMS");
  for (const room of rooms) {
    const doc = await Deno.readTextFile(`${ROOT_PATH}lib/${room}/mod.ts`);
    const line = /May import: ([^.]*)\./.exec(doc.replaceAll("\n * ", " "))?.[1];
    assert.ok(line, `lib/${room}/mod.ts has a "May import:" line`);
    const named = line.split(",").map((part) =>
      part.trim().replace(/^lib\//, "").replace(/\/$/, "")
    );
    assert.deepEqual(named.sort(), [...ROOMS[room]].sort(), `lib/${room}/mod.ts`);
  }
});

Deno.test("layers: the rule itself catches an upward import", () => {
  const exports = new Set(["mod.ts", "lib/format/mod.ts"]);
  assert.equal(
    breaks("ffi/connector.ts", "lib/connector/decode.ts", exports),
    "ffi/ imports only ground/ and ffi/",
  );
  assert.equal(
    breaks("cli/watch.ts", "lib/watch/watcher.ts", exports),
    "cli/ imports only cli/, ground/ and the package's exports (deno.json)",
  );
  assert.equal(breaks("cli/watch.ts", "lib/format/mod.ts", exports), null);
  assert.equal(
    breaks("lib/wait/wait.ts", "mod.ts", exports),
    "lib/ imports only ground/, ffi/ and lib/",
  );
  assert.equal(breaks("ground/errors.ts", "ffi/libc.ts", exports), "ground/ imports only ground/");
  assert.equal(
    breaks("lib/process/table.ts", "tests/support/ffi/clone.ts", exports),
    "the product never imports tests/ or bench/",
  );
  assert.equal(
    breaks("scripts/failures.ts", "lib/format/text.ts", exports),
    "scripts/ import only the package's exports (deno.json) and scripts/",
  );
});
