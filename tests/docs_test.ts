/**
 * The manual `deno doc` makes of the package's five exports (deno.json
 * `exports`), held to Deno std's habits: every exported symbol has an
 * `@example`, every optional field of an options type a `@default`, and every
 * example in the product is type-checked (no `ts ignore`) and imports what a
 * package user can import by the package's name, not by a relative path.
 * `deno task check` runs the same type check and `deno doc --lint`: this file
 * also checks that the task still does.
 */

import assert from "node:assert/strict";
import { fromFileUrl } from "./support/paths.ts";
import { runDenoCommand } from "./support/subprocess.ts";

const ROOT = new URL("../", import.meta.url);
const ROOT_PATH = fromFileUrl(ROOT);
const PACKAGE = "@procwatch/procwatch";

/**
 * Empty: every room follows the rules. A path prefix here would exempt a room
 * whose docs are being rewritten.
 */
const EXEMPT: string[] = [];

const exempt = (path: string): boolean => EXEMPT.some((prefix) => path.startsWith(prefix));

interface Config {
  exports: Record<string, string>;
  tasks: Record<string, string>;
}

async function config(): Promise<Config> {
  return JSON.parse(await Deno.readTextFile(`${ROOT_PATH}deno.json`)) as Config;
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runDenoCommand(args, { NO_COLOR: "1" });
}

/** The names each export of deno.json gives (`deno doc --json`, re-exports resolved). */
interface DocTag {
  kind: string;
}
interface DocProperty {
  name: string;
  optional?: boolean;
  jsDoc?: { tags?: DocTag[] };
}
interface DocDeclaration {
  kind: string;
  location: { filename: string; line: number };
  jsDoc?: { doc?: string; tags?: DocTag[] };
  def?: { properties?: DocProperty[] };
}
interface DocSymbol {
  name: string;
  declarations: DocDeclaration[];
}

async function entryDocs(): Promise<Map<string, DocSymbol[]>> {
  const entries = Object.values((await config()).exports);
  const result = await run(["doc", "--json", ...entries]);
  assert.equal(result.code, 0, result.stderr);
  const json = JSON.parse(result.stdout) as {
    nodes: Record<string, { symbols?: DocSymbol[] }>;
  };
  return new Map(
    Object.entries(json.nodes).map(([url, node]) => [url, node.symbols ?? []]),
  );
}

/** Every name deno.json's exports give. */
async function publicNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const symbols of (await entryDocs()).values()) {
    for (const symbol of symbols) names.add(symbol.name);
  }
  return names;
}

/**
 * Names the exports give as types only (`export { type ProcessTable }`): a
 * user can name the type but not construct it, so an example of an internal
 * constructor imports the class by its module's path.
 */
async function typeOnlyNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const entry of Object.values((await config()).exports)) {
    const text = await Deno.readTextFile(`${ROOT_PATH}${entry}`);
    for (const match of text.matchAll(/\btype\s+(\w+)\s*[,}]/g)) names.add(match[1]);
  }
  return names;
}

const relative = (url: string): string => url.replace(ROOT.href, "");

Deno.test("every symbol the package exports has JSDoc with an @example", async () => {
  const missing: string[] = [];
  for (const symbols of (await entryDocs()).values()) {
    for (const symbol of symbols) {
      for (const declaration of symbol.declarations) {
        if (declaration.kind === "reference") continue; // a re-export: checked where it is defined
        const where = `${relative(declaration.location.filename)}:${declaration.location.line}`;
        if (exempt(relative(declaration.location.filename))) continue;
        const tags = declaration.jsDoc?.tags ?? [];
        if (!tags.some((tag) => tag.kind === "example")) missing.push(`${symbol.name} (${where})`);
      }
    }
  }
  assert.deepEqual([...new Set(missing)].sort(), [], "exported symbols without an @example");
});

Deno.test("every optional field of an exported options type says its @default", async () => {
  const missing: string[] = [];
  for (const symbols of (await entryDocs()).values()) {
    for (const symbol of symbols) {
      if (!symbol.name.endsWith("Options")) continue;
      for (const declaration of symbol.declarations) {
        if (declaration.kind !== "interface") continue;
        if (exempt(relative(declaration.location.filename))) continue;
        for (const property of declaration.def?.properties ?? []) {
          const tags = property.jsDoc?.tags ?? [];
          if (property.optional && !tags.some((tag) => tag.kind === "default")) {
            missing.push(`${symbol.name}.${property.name}`);
          }
        }
      }
    }
  }
  assert.deepEqual([...new Set(missing)].sort(), [], "optional option fields without @default");
});

/** The product's .ts files whose doc examples make the manual: mod.ts, ground/, ffi/, lib/. */
async function manualFiles(): Promise<string[]> {
  const files = ["mod.ts"];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(`${ROOT_PATH}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  for (const dir of ["ground", "ffi", "lib"]) await walk(dir);
  return files.filter((file) => !exempt(file)).sort();
}

/** The fenced ```ts blocks of a file's JSDoc: their opening line and their lines. */
function examples(text: string): { fence: string; line: number; body: string[] }[] {
  const blocks: { fence: string; line: number; body: string[] }[] = [];
  let current: { fence: string; line: number; body: string[] } | null = null;
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/^\s*\*\s?/, "");
    if (current === null) {
      if (/^\s*\*\s*```(ts|typescript)\b/.test(raw)) {
        current = { fence: line.trim(), line: index + 1, body: [] };
      }
    } else if (/^\s*\*\s*```\s*$/.test(raw)) {
      blocks.push(current);
      current = null;
    } else {
      current.body.push(line);
    }
  });
  return blocks;
}

Deno.test("doc examples are type-checked and import public names by the package's name", async () => {
  const names = await publicNames();
  const typeOnly = await typeOnlyNames();
  const problems: string[] = [];
  for (const file of await manualFiles()) {
    for (const block of examples(await Deno.readTextFile(`${ROOT_PATH}${file}`))) {
      if (/\bignore\b/.test(block.fence)) problems.push(`${file}:${block.line}: ${block.fence}`);
      for (const line of block.body) {
        const match = /^import\s+(type\s+)?\{([^}]*)\}\s+from\s+"(\.[^"]*)"/.exec(line);
        if (match === null) continue;
        const reachable = match[2].split(",").map((name) => name.trim()).filter((name) =>
          name !== ""
        ).filter((name) => {
          const asType = match[1] !== undefined || name.startsWith("type ");
          const bare = name.replace(/^type\s+/, "").split(/\s+as\s+/)[0];
          return names.has(bare) && (asType || !typeOnly.has(bare));
        });
        if (reachable.length > 0) {
          problems.push(
            `${file}:${block.line}: imports ${reachable.join(", ")} from "${
              match[3]
            }"; a user imports it from "${PACKAGE}…"`,
          );
        }
      }
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("the package's own name resolves in doc examples, and every example type-checks", async () => {
  const files = await manualFiles();
  const text = (await Promise.all(files.map((file) => Deno.readTextFile(`${ROOT_PATH}${file}`))))
    .join("\n");
  assert.match(text, /from "@procwatch\/procwatch"/);
  const result = await run(["check", "--doc-only", "--quiet", ...files]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

Deno.test("deno doc --lint is clean on the five exports", async () => {
  const entries = Object.values((await config()).exports);
  const result = await run(["doc", "--lint", ...entries]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

Deno.test("`deno task check` (CI's .ci/run) type-checks the examples and lints the docs", async () => {
  const { exports, tasks } = await config();
  const steps = tasks.check.split("&&").map((step) => step.trim().split(/\s+/));
  const docCheck = steps.find((step) => step[1] === "check" && step.includes("--doc-only"));
  assert.ok(docCheck, `no 'deno check --doc-only' in the check task: ${tasks.check}`);
  for (const path of ["mod.ts", "ground/", "ffi/", "lib/"]) {
    assert.ok(docCheck.includes(path), path);
  }
  const docLint = steps.find((step) => step[1] === "doc" && step.includes("--lint"));
  assert.ok(docLint, `no 'deno doc --lint' in the check task: ${tasks.check}`);
  for (const entry of Object.values(exports)) {
    assert.ok(docLint.includes(entry.replace(/^\.\//, "")), entry);
  }
  const ci = await Deno.readTextFile(`${ROOT_PATH}.ci/run`);
  assert.match(ci, /^deno task check$/m);
});
