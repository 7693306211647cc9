/**
 * The prose around each command's options: examples, exit codes and the
 * permissions it needs. One source for `--help` (appended with commander's
 * `addHelpText("after", ...)`, so the options themselves stay where they are
 * defined) and for the man page (cli/man.ts), as `timeout --help` and
 * forkstat(8) do it.
 *
 * @module
 */

import { ExitCode, WaitExitCode } from "./exit_codes.ts";

/** One example command line and what it does. */
export interface Example {
  /** The command line as a user types it, starting with `procwatch`. */
  command: string;
  /** What it does, in a few words. */
  says: string;
}

/** One exit code (or range) and its meaning. */
export interface ExitStatus {
  /** The code, or a range such as `129/130/143`. */
  code: string;
  /** What it means. */
  meaning: string;
}

/** The help text of one command beyond its options. */
export interface CommandHelp {
  /** Example invocations. */
  examples: readonly Example[];
  /** Exit codes; empty when the command's own definition already prints them. */
  exitStatus: readonly ExitStatus[];
  /** Paragraphs on permissions and root; one starting with two spaces is a command, kept as is. */
  notes: readonly string[];
}

/** Where this procwatch's `cli.ts` is, for a `deno run` line that adds permissions. */
const CLI_PATH = decodeURIComponent(new URL("../cli.ts", import.meta.url).pathname);

const SIGNALS: ExitStatus = {
  code: "129/130/143",
  meaning: "ended by SIGHUP/SIGINT/SIGTERM, after unregistering from the kernel",
};

const ROOT_NOTE =
  "Root: since Linux 6.6 any user may listen to process events. Root (CAP_NET_ADMIN) is needed " +
  "on older kernels (else exit 4), for -r (real-time priority), and to read other users' " +
  "exe and cwd (null without it; the kernel allows them only to whoever may ptrace the " +
  "process). Without root, procwatch's exec-capture thread cannot raise its priority, so a " +
  "process that lives for microseconds is sometimes named only by its comm, or not at all.";

/** The help of each command, by name; `""` is the program itself. */
export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  "": {
    examples: [
      { command: "procwatch watch", says: "every process event, one line each" },
      { command: "procwatch wait 1234 && ./deploy", says: "deploy once process 1234 succeeded" },
      { command: "procwatch run scripts/failures.ts", says: "run a watch script" },
      { command: "procwatch watch --help", says: "options, examples and exit codes of watch" },
    ],
    exitStatus: [
      { code: `${ExitCode.USAGE}`, meaning: "bad command line" },
      {
        code: `${ExitCode.NO_FFI}`,
        meaning: "Deno was started without a permission procwatch needs",
      },
    ],
    notes: ["Other exit codes depend on the command: see procwatch COMMAND --help.", ROOT_NOTE],
  },
  watch: {
    examples: [
      { command: "procwatch watch", says: "every event, one line each, until Ctrl-C" },
      {
        command: "procwatch watch -e exec,exit --json",
        says: "only execs and exits, as JSON lines",
      },
      { command: "procwatch watch -p 1234 -D 10", says: "events of process 1234, for 10 seconds" },
      {
        command: "procwatch watch --tree 1234 --format tree",
        says: "1234 and its descendants, indented",
      },
      { command: "procwatch watch --failed -S", says: "failed processes; a summary at the end" },
      { command: "procwatch watch --comm sshd,sudo -n 20", says: "20 events of sshd or sudo" },
      {
        command: "procwatch watch -q --metrics 127.0.0.1:9464",
        says: "Prometheus metrics at http://127.0.0.1:9464/metrics, no output",
      },
      {
        command: "procwatch watch -q --nats nats://127.0.0.1:4222",
        says: "every event to JetStream, subjects procwatch.HOST.TYPE",
      },
    ],
    exitStatus: [
      {
        code: `${ExitCode.OK}`,
        meaning: "--duration or --count reached, or the reader closed stdout (watch | head)",
      },
      { code: `${ExitCode.FAILURE}`, meaning: "unexpected failure (a bug or an unusual error)" },
      {
        code: `${ExitCode.USAGE}`,
        meaning: "bad command line: option, event type, user, regex, pid",
      },
      {
        code: `${ExitCode.NO_FFI}`,
        meaning: "Deno lacks --allow-ffi, or --allow-net etc. for --metrics/--nats " +
          "(the line says what to run)",
      },
      {
        code: `${ExitCode.PERMISSION}`,
        meaning: "the kernel or a sandbox refused: root is needed before Linux 6.6",
      },
      {
        code: `${ExitCode.UNAVAILABLE}`,
        meaning: "no proc events here (CONFIG_PROC_EVENTS, user or pid namespace)",
      },
      {
        code: `${ExitCode.NETWORK_NAMESPACE}`,
        meaning: "in a network namespace other than the host's (unshare -n, containers)",
      },
      { code: `${ExitCode.NO_SUCH_PROCESS}`, meaning: "a --pid or --tree process does not exist" },
      SIGNALS,
    ],
    notes: [ROOT_NOTE],
  },
  wait: {
    examples: [
      { command: "procwatch wait 1234 && ./deploy", says: "deploy only if 1234 exits with 0" },
      { command: "procwatch wait --any 1234 5678", says: "return when the first of them ends" },
      { command: "procwatch wait -t 30 1234", says: "give up after 30 s (exit 124)" },
      { command: "procwatch wait --json 1234", says: "how it ended, as one JSON object" },
    ],
    exitStatus: [
      {
        code: "0-255",
        meaning: "status of the last process to end (--any: the first): its exit code, " +
          "or 128 + signal number (137: SIGKILL)",
      },
      { code: `${ExitCode.USAGE}`, meaning: "bad command line, or a thread id instead of a pid" },
      {
        code: `${ExitCode.NO_FFI}`,
        meaning: "run without --allow-ffi (the line says what to run)",
      },
      { code: `${WaitExitCode.TIMEOUT}`, meaning: "--timeout expired first" },
      {
        code: `${WaitExitCode.UNKNOWN}`,
        meaning: "status unknown (pidfd fallback, events lost), or wait failed",
      },
      { code: `${WaitExitCode.NO_SUCH_PROCESS}`, meaning: "a pid has no process" },
      SIGNALS,
    ],
    notes: [
      "No root needed: without the proc connector (old kernel, network namespace) wait falls " +
      "back to pidfd_open(2), which needs no privilege; the status of another user's process " +
      "may then be unknown (exit 125).",
    ],
  },
  run: {
    examples: [
      { command: "procwatch run scripts/failures.ts", says: "report failed processes" },
      {
        command: "procwatch run scripts/new_processes.ts '^(nc|ncat)$' --signal TERM",
        says: "arguments after the script are its Deno.args",
      },
      { command: "procwatch run ./my_watch.ts", says: "your own script, importing mod.ts" },
    ],
    exitStatus: [
      { code: `${ExitCode.OK}`, meaning: "the script finished" },
      { code: "n", meaning: "the script called Deno.exit(n)" },
      {
        code: `${ExitCode.NO_FFI}`,
        meaning: "a Deno permission is missing (--allow-ffi, --allow-read)",
      },
      {
        code: `${ExitCode.SCRIPT}`,
        meaning: "the script failed to load or threw; its watchers were unregistered",
      },
      {
        code: "4-7",
        meaning: "a procwatch error the script let escape keeps its code (see watch --help)",
      },
      SIGNALS,
    ],
    notes: [
      "Permissions: the script runs inside procwatch, with procwatch's Deno permissions: " +
      "--allow-ffi (the kernel), --allow-read (to load the script; the installed procwatch has " +
      "both). --allow-ffi gives the script the whole of libc: run only scripts you trust. " +
      "A script that needs more (--allow-run, --allow-write, --allow-net) runs with deno itself:",
      `  deno run --allow-ffi --allow-read --allow-run ${CLI_PATH} run SCRIPT`,
    ],
  },
  completions: {
    examples: [
      {
        command:
          "procwatch completions bash > ~/.local/share/bash-completion/completions/procwatch",
        says: "bash",
      },
      {
        command: "procwatch completions zsh > ~/.zfunc/_procwatch",
        says: "zsh (with fpath+=(~/.zfunc) before compinit)",
      },
      {
        command: "procwatch completions fish > ~/.config/fish/completions/procwatch.fish",
        says: "fish",
      },
      { command: "source <(procwatch completions bash)", says: "bash, this shell only" },
    ],
    exitStatus: [
      { code: `${ExitCode.OK}`, meaning: "the script was printed" },
      { code: `${ExitCode.USAGE}`, meaning: "unknown shell" },
    ],
    notes: [],
  },
  man: {
    examples: [
      { command: "procwatch man | man -l -", says: "read it" },
      {
        command: "procwatch man > /usr/local/share/man/man1/procwatch.1",
        says: "install it for man procwatch",
      },
    ],
    exitStatus: [{ code: `${ExitCode.OK}`, meaning: "the page was printed" }],
    notes: [],
  },
};

/** Wraps a paragraph at `width` columns. */
function wrapLines(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * Lays out a two-column list the way commander lays out options, within 80
 * columns: the right column wraps under itself; a left column too wide for
 * that gets a line of its own.
 */
function columns(rows: readonly (readonly [string, string])[]): string {
  const short = rows.filter(([left]) => left.length <= 36);
  const width = Math.max(0, ...short.map(([left]) => left.length));
  const indent = 2 + width + 2;
  return rows.flatMap(([left, right]) => {
    if (left.length > 36) {
      return [
        `  ${left}`,
        ...wrapLines(right, 80 - indent).map((line) => " ".repeat(indent) + line),
      ];
    }
    const [first, ...rest] = wrapLines(right, 80 - indent);
    return [`  ${left.padEnd(width)}  ${first}`, ...rest.map((line) => " ".repeat(indent) + line)];
  }).join("\n");
}

/**
 * The text `--help` prints after the options of command `name` (`""` for the
 * program): examples, exit status, notes.
 *
 * @example
 * ```ts
 * import { helpAfter } from "./help.ts";
 * console.log(helpAfter("watch").includes("Exit status:")); // true
 * ```
 */
export function helpAfter(name: string): string {
  const help = COMMAND_HELP[name];
  if (help === undefined) return "";
  const parts: string[] = [];
  if (help.examples.length > 0) {
    const examples = help.examples.map((e) => [e.command, e.says] as const);
    parts.push(`Examples:\n${columns(examples)}`);
  }
  if (help.exitStatus.length > 0) {
    parts.push(
      `Exit status:\n${columns(help.exitStatus.map((s) => [s.code, s.meaning] as const))}`,
    );
  }
  for (const note of help.notes) {
    // A command line stays on one line, to be copied; a following one joins its paragraph.
    if (note.startsWith("  ") && parts.length > 0) parts[parts.length - 1] += `\n${note}`;
    else parts.push(wrapLines(note, 80).join("\n"));
  }
  return parts.length === 0 ? "" : `\n${parts.join("\n\n")}\n`;
}
