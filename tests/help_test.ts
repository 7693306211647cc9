/**
 * `--help` (examples, exit codes, permissions), `procwatch completions` for
 * bash, zsh and fish, and `procwatch man`, checked against the command tree
 * itself (`buildProgram()`): whatever the options become, help, completion and
 * man page must name the same ones. Completion scripts are run by the real
 * shells (bash always; zsh and fish when installed, else the test says so).
 */

import assert from "node:assert/strict";
import { type CommandUnknownOpts, Help } from "@commander-js/extra-typings";
import { buildProgram } from "../cli/program.ts";
import { COMMAND_HELP } from "../cli/help.ts";
import { FORMATS } from "../cli/watch_input.ts";
import { ExitCode, WaitExitCode } from "../cli/exit_codes.ts";
import { EVENT_TYPES } from "../lib/events/events.ts";
import { runCli } from "./support/cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const helper = new Help();
const program = buildProgram() as unknown as CommandUnknownOpts;
/** The subcommands users type (commander's implicit `help` aside). */
const commands = helper.visibleCommands(program).filter((command) => command.name() !== "help");

function flagsOf(command: CommandUnknownOpts): string[] {
  return helper.visibleOptions(command).flatMap((option) =>
    [option.short, option.long].filter((flag): flag is string => flag !== undefined)
  );
}

function sorted(words: Iterable<string>): string[] {
  return [...words].sort();
}

function has(program: string): boolean {
  return new Deno.Command("sh", { args: ["-c", `command -v ${program}`], stdout: "null" })
    .outputSync().success;
}

async function shell(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", LC_ALL: "C.UTF-8" },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function script(shellName: string): Promise<string> {
  const result = await runCli(["completions", shellName], []);
  assert.equal(result.code, 0, result.stderr);
  const path = await Deno.makeTempFile({ prefix: `procwatch-${shellName}-` });
  await Deno.writeTextFile(path, result.stdout);
  return path;
}

/** Splits a shell command line into words (single and double quotes; no expansions). */
function words(line: string): string[] {
  const result: string[] = [];
  for (const match of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    result.push(match[1] ?? match[2] ?? match[3]);
  }
  return result;
}

Deno.test("--help of the program and of every subcommand has examples and exit codes", async () => {
  for (const name of ["", ...commands.map((command) => command.name())]) {
    const result = await runCli(name === "" ? ["--help"] : [name, "--help"], []);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Examples:\n {2}procwatch /m, `${name} --help`);
    assert.match(result.stdout, /^Exit status:\n/m, `${name} --help`);
    for (const example of COMMAND_HELP[name].examples) {
      assert.ok(result.stdout.includes(example.command), `${name} --help: ${example.command}`);
    }
  }
  const codeListed = (text: string, code: number) =>
    assert.match(text, new RegExp(`^  ${code} +\\S`, "m"), `exit code ${code}`);
  const watch = (await runCli(["watch", "--help"], [])).stdout;
  for (const code of Object.values(ExitCode)) if (code !== ExitCode.SCRIPT) codeListed(watch, code);
  assert.match(watch, /^ {2}129\/130\/143 /m);
  const wait = (await runCli(["wait", "--help"], [])).stdout;
  for (const code of Object.values(WaitExitCode)) codeListed(wait, code);
  const run = (await runCli(["run", "--help"], [])).stdout;
  codeListed(run, ExitCode.SCRIPT);
  codeListed(run, ExitCode.NO_FFI);
  assert.match(run, /--allow-read/);
  assert.match(run, /--allow-ffi/);
  assert.match(
    run,
    /^ {2}deno run --allow-ffi --allow-read --allow-run \/\S+\/cli\.ts run SCRIPT$/m,
  );
  const top = (await runCli(["--help"], [])).stdout;
  // Root is not needed since Linux 6.6; the help says when it is.
  assert.match(top, /Linux 6\.6/);
  assert.match(top, /older kernels/);
  assert.match(top, /-r \(real-time\s+priority\)/);
  assert.match(top, /exe and cwd/);
  for (const line of top.split("\n").concat(watch.split("\n"), run.split("\n"))) {
    // A command line to copy is not wrapped, whatever the length of its path.
    if (!line.startsWith("  deno run ")) {
      assert.ok(line.length <= 80, `help line over 80 columns: ${line}`);
    }
  }
});

Deno.test("every --help example is a command line the command tree accepts", async () => {
  for (const [name, help] of Object.entries(COMMAND_HELP)) {
    for (const example of help.examples.filter((e) => !e.command.includes("--help"))) {
      // The procwatch part: before a shell operator or redirection.
      const from = example.command.slice(example.command.indexOf("procwatch "));
      const line = from.split(/ (?:&&|\|\||\||>) /)[0].replace(/\)$/, "");
      const args = words(line).slice(1);
      const tree = buildProgram() as unknown as CommandUnknownOpts;
      let ran = "";
      for (const command of tree.commands) {
        command.action(() => {
          ran = command.name();
        });
      }
      await tree.parseAsync(args, { from: "user" });
      assert.equal(ran, args[0], `${name}: ${example.command}`);
    }
  }
});

Deno.test("bash completion: subcommands, every option of each, event names, formats", async () => {
  const path = await script("bash");
  const cases: [string[], string][] = [
    [["procwatch", ""], "top"],
    [["procwatch", "watch", "--for"], "format"],
    [["procwatch", "watch", "-e", ""], "events"],
    [["procwatch", "watch", "-e", "exec,ex"], "list"],
    [["procwatch", "watch", "--format", ""], "formats"],
    [["procwatch", "watch", "-D", "5", "--js"], "json"],
    [["procwatch", "wait", "--method", ""], "methods"],
    [["procwatch", "wait", "-t", "5", ""], "pids"],
    [["procwatch", "completions", ""], "shells"],
    [["procwatch", "run", "scripts/failu"], "script"],
    [["procwatch", "watch", "--uid", "roo"], "users"],
    ...commands.map((command): [string[], string] => [
      ["procwatch", command.name(), "-"],
      `options ${command.name()}`,
    ]),
  ];
  const body = cases.map(([line, label]) =>
    `t ${JSON.stringify(label)} ${line.map((word) => `'${word}'`).join(" ")}`
  );
  const result = await shell("bash", [
    "--norc",
    "--noprofile",
    "-c",
    [
      `source ${path}`,
      `source ${path}`, // twice: a second load (new shell config) must not fail
      "complete -p procwatch",
      't() { local label="$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=();',
      '  _procwatch; printf "%s=%s\\n" "$label" "${COMPREPLY[*]}"; }',
      ...body,
    ].join("\n"),
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  const lines = result.stdout.split("\n");
  assert.equal(lines[0], "complete -F _procwatch procwatch");
  const got = new Map(
    lines.slice(1).filter((line) => line.includes("=")).map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1).split(" ").filter((w) => w !== "")];
    }),
  );
  assert.deepEqual(sorted(got.get("top")!), sorted([...commands.map((c) => c.name()), "help"]));
  assert.deepEqual(got.get("format"), ["--format"]);
  assert.deepEqual(sorted(got.get("events")!), sorted([...EVENT_TYPES, "all"]));
  assert.deepEqual(sorted(got.get("list")!), ["exec,exec", "exec,exit"]);
  assert.deepEqual(sorted(got.get("formats")!), sorted(FORMATS));
  assert.deepEqual(got.get("json"), ["--json"]);
  assert.deepEqual(sorted(got.get("methods")!), ["auto", "connector", "pidfd"]);
  assert.ok(got.get("pids")!.includes(String(Deno.pid)), "wait completes running pids");
  assert.ok(got.get("pids")!.every((word) => /^\d+$/.test(word)));
  assert.deepEqual(sorted(got.get("shells")!), ["bash", "fish", "zsh"]);
  assert.deepEqual(got.get("script"), ["scripts/failures.ts"]);
  assert.deepEqual(got.get("users"), ["root"]);
  for (const command of commands) {
    assert.deepEqual(
      sorted(got.get(`options ${command.name()}`)!),
      sorted(flagsOf(command)),
      `options of ${command.name()}`,
    );
  }
  await Deno.remove(path);
});

Deno.test({
  name: "fish completion: parsed by fish, and `complete -C` gives the tree's options and values",
  ignore: !has("fish"),
  fn: async () => {
    const path = await script("fish");
    assert.equal((await shell("fish", ["-n", path])).code, 0);
    const ask = async (line: string) => {
      const result = await shell("fish", [
        "--no-config",
        "-c",
        `source ${path}; complete -C ${JSON.stringify(line)}`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("\t")[0]);
    };
    assert.deepEqual(
      sorted(await ask("procwatch ")),
      sorted([...commands.map((c) => c.name()), "help"]),
    );
    assert.deepEqual(await ask("procwatch watch --for"), ["--format"]);
    assert.deepEqual(sorted(await ask("procwatch watch --format ")), sorted(FORMATS));
    assert.ok((await ask("procwatch watch -e exec,")).includes("exec,exit"));
    assert.deepEqual(sorted(await ask("procwatch wait --method ")), ["auto", "connector", "pidfd"]);
    assert.deepEqual(sorted(await ask("procwatch completions ")), ["bash", "fish", "zsh"]);
    for (const command of commands) {
      const longs = flagsOf(command).filter((flag) => flag.startsWith("--"));
      assert.deepEqual(sorted(await ask(`procwatch ${command.name()} --`)), sorted(longs));
    }
    await Deno.remove(path);
  },
});

Deno.test({
  name: "zsh completion: parsed, registered by compinit, and offers values in an interactive zsh",
  ignore: !has("zsh"),
  fn: async () => {
    const path = await script("zsh");
    const check = await shell("zsh", ["-n", path]);
    assert.equal(check.code, 0, check.stderr);
    const dump = await Deno.makeTempFile();
    const loaded = await shell("zsh", [
      "-f",
      "-c",
      `autoload -U compinit && compinit -u -d ${dump} && source ${path} && print -r -- $_comps[procwatch]`,
    ]);
    assert.equal(loaded.stdout.trim(), "_procwatch", loaded.stderr);
    // Real completion: an interactive zsh in a pty (zsh/zpty) types each line and TAB; a
    // wrapper around compadd records what the completion functions offer.
    const dir = await Deno.makeTempDir({ prefix: "procwatch-zsh-" });
    await Deno.copyFile(path, `${dir}/_procwatch`);
    const requests = [
      "procwatch ",
      "procwatch watch --for",
      "procwatch watch -e exec,ex",
      "procwatch watch --format ",
      "procwatch wait --method ",
    ];
    const out = `${dir}/offered`;
    const driver = [
      "zmodload zsh/zpty",
      "zpty z zsh -f -i",
      `zpty -w z 'PS1=""; fpath=(${dir} $fpath); autoload -U compinit; compinit -u -D'`,
      `zpty -w z 'compadd() { builtin compadd "$@"; local -a a; builtin compadd -O a "$@"; ` +
      `(( $#a )) && print -r -- "\${(j: :)a}" >> ${out}; }'`,
      ...requests.flatMap((line) => [
        `print -r -- "== ${line}" >> ${out}`,
        `before=$(wc -l < ${out})`,
        `zpty -w -n z $'${line}\t'`,
        // Until the completion functions offered something (the first TAB also loads compinit).
        `for i in {1..300}; do (( $(wc -l < ${out}) > before )) && break; sleep 0.1; done`,
        "sleep 0.5",
        `zpty -w -n z $'\\C-u'`,
      ]),
      "zpty -d z",
    ].join("\n");
    await Deno.writeTextFile(`${dir}/driver.zsh`, driver);
    const driven = await shell("zsh", ["-f", `${dir}/driver.zsh`]);
    assert.equal(driven.code, 0, driven.stderr);
    const offered = new Map<string, Set<string>>();
    let current = "";
    for (const line of (await Deno.readTextFile(out)).split("\n")) {
      if (line.startsWith("== ")) offered.set(current = line.slice(3), new Set());
      else if (line !== "") { for (const word of line.split(" ")) offered.get(current)?.add(word); }
    }
    const names = commands.map((c) => c.name());
    for (const name of names) assert.ok(offered.get("procwatch ")?.has(name), `offers ${name}`);
    assert.ok(offered.get("procwatch watch --for")?.has("--format"));
    assert.ok(offered.get("procwatch watch -e exec,ex")?.has("exit"));
    for (const format of FORMATS) assert.ok(offered.get("procwatch watch --format ")?.has(format));
    for (const method of ["auto", "connector", "pidfd"]) {
      assert.ok(offered.get("procwatch wait --method ")?.has(method), method);
    }
    await Deno.remove(dir, { recursive: true });

    // Every option of the tree is in the _arguments specs of its subcommand.
    const text = await Deno.readTextFile(path);
    for (const command of commands) {
      const start = text.indexOf(`        ${command.name()})\n`);
      assert.ok(start > 0, command.name());
      const block = text.slice(start, text.indexOf(";;", start));
      for (const flag of flagsOf(command)) {
        assert.ok(block.includes(flag), `${command.name()} ${flag}`);
      }
    }
    await Deno.remove(path);
    await Deno.remove(dump);
  },
});

Deno.test("procwatch completions refuses an unknown shell with exit 2", async () => {
  const result = await runCli(["completions", "tcsh"], []);
  assert.equal(result.code, ExitCode.USAGE);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
});

Deno.test({
  name: "procwatch man: roff without warnings, every command, option and example of the tree",
  ignore: !has("groff"),
  fn: async () => {
    const page = await runCli(["man"], []);
    assert.equal(page.code, 0, page.stderr);
    assert.match(page.stdout, /^\.TH PROCWATCH 1 /m);
    const path = await Deno.makeTempFile({ suffix: ".1" });
    await Deno.writeTextFile(path, page.stdout);
    const warnings = await shell("groff", ["-man", "-Tutf8", "-ww", "-z", path]);
    assert.equal(warnings.stderr, "", "groff warnings");
    const rendered = await shell("groff", [
      "-man",
      "-Tutf8",
      "-rLL=250n",
      "-rHY=0",
      "-P-cbou",
      path,
    ]);
    assert.equal(rendered.code, 0, rendered.stderr);
    // groff may render \- as U+2212; what a user copies must still read as "-".
    const text = rendered.stdout.replace(/[\u2010\u2212]/g, "-").replace(/\s+/g, " ");
    for (const command of commands) {
      assert.ok(text.includes(`procwatch ${command.name()}`), command.name());
      for (const option of helper.visibleOptions(command)) {
        assert.ok(text.includes(helper.optionTerm(option)), `${command.name()} ${option.flags}`);
      }
      for (const example of COMMAND_HELP[command.name()]?.examples ?? []) {
        assert.ok(text.includes(example.command.replace(/\s+/g, " ")), example.command);
      }
    }
    assert.match(text, /EXIT|Exit status/);
    await Deno.remove(path);
  },
});
