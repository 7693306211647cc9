/**
 * Shell completion scripts for bash, zsh and fish, generated from the
 * commander command tree (`procwatch completions SHELL`): subcommands, their
 * options with descriptions, and the values an option takes (event names,
 * formats, wait methods, pids, users, files).
 *
 * Why not a library: `@bomb.sh/tab` (0.0.22, the maintained candidate) runs
 * under Deno with commander, but its scripts call `procwatch complete -- ...`
 * on every TAB (one Deno start-up per keypress), its bash script needs the
 * bash-completion package (`_get_comp_words_by_ref`) and cannot be sourced
 * twice (top-level `readonly`), and it completes option values only for
 * `argChoices`, so not procwatch's comma-separated event lists. Static scripts
 * generated here from the same tree need nothing at TAB time.
 *
 * @module
 */

import { type CommandUnknownOpts, Help, type Option } from "@commander-js/extra-typings";
import { EVENT_TYPES, UsageError } from "../mod.ts";
import { FORMATS } from "./watch_input.ts";

/** The shells `procwatch completions` writes a script for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** A shell `procwatch completions` supports. */
export type Shell = typeof SHELLS[number];

/** What an option's value or a positional argument completes to. */
export type ValueKind =
  | { kind: "none" }
  | { kind: "words"; words: readonly string[]; list: boolean }
  | { kind: "pid" }
  | { kind: "user" }
  | { kind: "file" };

/** An option as the completion scripts see it. */
export interface OptionModel {
  /** `-e`, or undefined. */
  short?: string;
  /** `--events`, or undefined. */
  long?: string;
  /** One line of description. */
  description: string;
  /** What its value completes to; `null` for a flag without a value. */
  value: ValueKind | null;
}

/** A positional argument. */
export interface ArgumentModel {
  /** Its name (`pid`, `script`). */
  name: string;
  /** Whether it takes the rest of the words. */
  variadic: boolean;
  /** What it completes to. */
  value: ValueKind;
}

/** A command (or the program) as the completion scripts see it. */
export interface CommandModel {
  /** The command's name. */
  name: string;
  /** One line of description. */
  description: string;
  /** Its options, help included. */
  options: OptionModel[];
  /** Its positional arguments. */
  args: ArgumentModel[];
  /** Whether words after its first argument belong to that argument (`run SCRIPT ARGS`). */
  passThrough: boolean;
  /** Subcommands (the program only). */
  commands: CommandModel[];
}

/**
 * Values of options whose parser checks them itself (no commander `choices`);
 * `choices` on an option, when present, win. `--events` is a comma-separated list.
 */
const OPTION_VALUES: Readonly<Record<string, ValueKind>> = {
  "--events": { kind: "words", words: [...EVENT_TYPES, "all"], list: true },
  "--format": { kind: "words", words: FORMATS, list: false },
  "--method": { kind: "words", words: ["auto", "connector", "pidfd"], list: false },
};

/** What a value named by its placeholder (`<pid>`, `<user>`, `<script>`) completes to. */
function kindOfName(name: string): ValueKind {
  const base = name.replace(/\.\.\.$/, "");
  if (/^(pid|ppid|tid)s?$/.test(base)) return { kind: "pid" };
  if (/^(user|uid)$/.test(base)) return { kind: "user" };
  if (/^(script|file|path|args)$/.test(base)) return { kind: "file" };
  return { kind: "none" };
}

function optionValue(option: Option): ValueKind | null {
  if (!option.required && !option.optional) return null;
  if (option.argChoices !== undefined && option.argChoices.length > 0) {
    return { kind: "words", words: option.argChoices, list: false };
  }
  const known = option.long === undefined ? undefined : OPTION_VALUES[option.long];
  if (known !== undefined) return known;
  const placeholder = /[<[]([^>\]]+)[>\]]/.exec(option.flags);
  return placeholder === null ? { kind: "none" } : kindOfName(placeholder[1]);
}

function firstLine(text: string): string {
  return text.split("\n")[0].trim();
}

/**
 * Reads a command (the program, recursively) into the model the generators use.
 *
 * @example
 * ```ts
 * import { buildProgram } from "./program.ts";
 * import { commandModel } from "./completions.ts";
 * console.log(commandModel(buildProgram()).commands.map((c) => c.name));
 * ```
 */
export function commandModel(command: CommandUnknownOpts): CommandModel {
  const help = new Help();
  const subcommands = help.visibleCommands(command);
  const names = subcommands.map((sub) => sub.name());
  const model: CommandModel = {
    name: command.name(),
    description: firstLine(command.description()),
    options: help.visibleOptions(command).map((option) => ({
      short: option.short,
      long: option.long,
      description: firstLine(option.description),
      value: optionValue(option),
    })),
    args: command.registeredArguments.map((argument) => ({
      name: argument.name(),
      variadic: argument.variadic,
      value: argument.argChoices !== undefined && argument.argChoices.length > 0
        ? { kind: "words", words: argument.argChoices, list: false }
        : kindOfName(argument.name()),
    })),
    // commander keeps this setting private; `run` sets it so a script's own options pass.
    passThrough: Reflect.get(command, "_passThroughOptions") === true,
    commands: [],
  };
  model.commands = subcommands.map((sub) => {
    const child = commandModel(sub);
    // commander's implicit `help [command]` has no parent link to list its siblings.
    if (child.name === "help") {
      child.args = child.args.map((argument) =>
        argument.name === "command"
          ? { ...argument, value: { kind: "words", words: names, list: false } }
          : argument
      );
    }
    return child;
  });
  return model;
}

const SAFE_WORD = /^[\w@%+=:,./-]+$/;

function checkWords(words: readonly string[]): string {
  for (const word of words) {
    if (!SAFE_WORD.test(word)) throw new Error(`completion word needs quoting: ${word}`);
  }
  return words.join(" ");
}

function optionWords(command: CommandModel): string[] {
  return command.options.flatMap((option) =>
    [option.short, option.long].filter((flag): flag is string => flag !== undefined)
  );
}

function optionPattern(option: OptionModel): string {
  return [option.short, option.long].filter((flag) => flag !== undefined).join("|");
}

// ---------------------------------------------------------------- bash

function bashValue(value: ValueKind, cur = '"$cur"'): string {
  switch (value.kind) {
    case "words":
      return `_procwatch_words "${checkWords(value.words)}" ${cur} ${value.list ? 1 : 0}`;
    case "pid":
      return `_procwatch_pids ${cur}`;
    case "user":
      return `mapfile -t COMPREPLY < <(compgen -u -- ${cur})`;
    case "file":
      return `_procwatch_files ${cur}`;
    case "none":
      return "COMPREPLY=()";
  }
}

function bashCommand(command: CommandModel): string {
  const lines: string[] = [`    ${command.name})`];
  const valued = command.options.filter((option) => option.value !== null);
  if (valued.length > 0) {
    lines.push('      case "$prev" in');
    for (const option of valued) {
      lines.push(`        ${optionPattern(option)}) ${bashValue(option.value!)}; return 0 ;;`);
    }
    lines.push("      esac");
  }
  if (command.passThrough) {
    lines.push(
      "      # Words after the first argument are the script's own: complete files.",
      `      if (( npos >= 1 )); then _procwatch_files "$cur"; return 0; fi`,
    );
  }
  const options = checkWords(optionWords(command));
  if (command.args.length === 0) {
    lines.push(`      mapfile -t COMPREPLY < <(compgen -W "${options}" -- "$cur")`);
  } else {
    lines.push(
      `      if [[ $cur == -* ]]; then`,
      `        mapfile -t COMPREPLY < <(compgen -W "${options}" -- "$cur"); return 0`,
      "      fi",
      "      case $npos in",
    );
    command.args.forEach((argument, index) => {
      const last = index === command.args.length - 1;
      const pattern = last && argument.variadic ? "*" : `${index}`;
      lines.push(`        ${pattern}) ${bashValue(argument.value)} ;;`);
    });
    lines.push("      esac");
  }
  lines.push("      ;;");
  return lines.join("\n");
}

/**
 * The bash completion script: `complete -F _procwatch procwatch`. Needs only
 * bash (not the bash-completion package); options, their values (comma
 * lists included) and positional arguments of each subcommand.
 *
 * @example
 * ```ts
 * import { buildProgram } from "./program.ts";
 * import { bashCompletion, commandModel } from "./completions.ts";
 * console.log(bashCompletion(commandModel(buildProgram())));
 * ```
 */
export function bashCompletion(program: CommandModel): string {
  const name = program.name;
  const takesValue = program.commands.flatMap((command) =>
    command.options.filter((option) => option.value !== null).flatMap((option) =>
      [option.short, option.long].filter((flag) => flag !== undefined).map((flag) =>
        `"${command.name} ${flag}"`
      )
    )
  );
  return `# bash completion for ${name}; generated by \`${name} completions bash\` from its options.
# Load it with: source <(${name} completions bash)

# Completes words (a comma-separated list when $3 is 1: "exec,ex" -> "exec,exit").
_procwatch_words() {
  local cur="$2" prefix="" word
  if [[ $3 == 1 && $cur == *,* ]]; then prefix="\${cur%,*},"; cur="\${cur##*,}"; fi
  COMPREPLY=()
  while IFS= read -r word; do COMPREPLY+=("$prefix$word"); done < <(compgen -W "$1" -- "$cur")
  if [[ $3 == 1 ]]; then compopt -o nospace 2>/dev/null; fi
  return 0
}

_procwatch_pids() {
  local pids
  pids=$(cd /proc 2>/dev/null && printf '%s ' [0-9]*)
  mapfile -t COMPREPLY < <(compgen -W "$pids" -- "$1")
}

_procwatch_files() {
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

# Whether option $2 of subcommand $1 takes a value (the next word is not an argument).
_procwatch_takes_value() {
  case "$1 $2" in
    ${takesValue.join("|") || '""'}) return 0 ;;
  esac
  return 1
}

_procwatch() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" word i skip=0 npos=0
  if (( COMP_CWORD > 0 )); then prev="\${COMP_WORDS[COMP_CWORD-1]}"; fi
  for (( i = 1; i < COMP_CWORD; i++ )); do
    word="\${COMP_WORDS[i]}"
    if [[ -z $cmd ]]; then
      if [[ $word != -* ]]; then cmd="$word"; fi
    elif (( skip )); then
      skip=0
    elif (( npos >= 1 )) && [[ $cmd == ${
    program.commands.filter((c) => c.passThrough).map((c) => c.name).join("|") || '""'
  } ]]; then
      npos=$(( npos + 1 ))
    elif [[ $word == -* ]]; then
      if _procwatch_takes_value "$cmd" "$word"; then skip=1; fi
    else
      npos=$(( npos + 1 ))
    fi
  done
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "${checkWords(optionWords(program))}" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "${
    checkWords(program.commands.map((c) => c.name))
  }" -- "$cur")
    fi
    return 0
  fi
  case "$cmd" in
${program.commands.map(bashCommand).join("\n")}
  esac
  return 0
}

complete -F _procwatch ${name}
`;
}

// ---------------------------------------------------------------- zsh

/** Quotes for zsh inside single quotes. */
function zshQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** A description inside an `_arguments` spec's brackets. */
function zshDescription(text: string): string {
  return text.replace(/([\\[\]:])/g, "\\$1");
}

function zshAction(value: ValueKind, label: string): string {
  switch (value.kind) {
    case "words":
      return value.list
        ? `${label}:_values -s , ${label} ${checkWords(value.words)}`
        : `${label}:(${checkWords(value.words)})`;
    case "pid":
      return `${label}:_pids`;
    case "user":
      return `${label}:_users`;
    case "file":
      return `${label}:_files`;
    case "none":
      return `${label}: `;
  }
}

function zshOption(option: OptionModel): string {
  const flags = [option.short, option.long].filter((flag) => flag !== undefined);
  const description = `[${zshDescription(option.description)}]`;
  const action = option.value === null
    ? ""
    : `:${zshAction(option.value, (option.long ?? option.short ?? "value").replace(/^-+/, ""))}`;
  const spec = `${description}${action}`;
  if (option.value === null) {
    const exclusive = `(${flags.join(" ")})`;
    return flags.length === 1
      ? zshQuote(`${exclusive}${flags[0]}${spec}`)
      : `${zshQuote(exclusive)}{${flags.join(",")}}${zshQuote(spec)}`;
  }
  // Options with a value may repeat (accumulating ones such as -p do).
  return flags.length === 1
    ? zshQuote(`*${flags[0]}${spec}`)
    : `${zshQuote("*")}{${flags.join(",")}}${zshQuote(spec)}`;
}

function zshArguments(command: CommandModel): string[] {
  return command.args.map((argument, index) => {
    const label = argument.name;
    if (command.passThrough && index > 0) return zshQuote(`*::${zshAction(argument.value, label)}`);
    const position = argument.variadic ? "*" : `${index + 1}`;
    return zshQuote(`${position}:${zshAction(argument.value, label)}`);
  });
}

/**
 * The zsh completion script (`#compdef procwatch`): for `fpath` (autoloaded
 * as `_procwatch`) or for `source` after `compinit`.
 *
 * @example
 * ```ts
 * import { buildProgram } from "./program.ts";
 * import { commandModel, zshCompletion } from "./completions.ts";
 * console.log(zshCompletion(commandModel(buildProgram())));
 * ```
 */
export function zshCompletion(program: CommandModel): string {
  const name = program.name;
  const subcommands = program.commands.map((command) =>
    `        ${zshQuote(`${command.name}:${command.description}`)}`
  );
  const cases = program.commands.map((command) => {
    const specs = [...command.options.map(zshOption), ...zshArguments(command)];
    return `        ${command.name})\n          _arguments -s -S \\\n            ${
      specs.join(" \\\n            ")
    }\n          ;;`;
  });
  return `#compdef ${name}
# zsh completion for ${name}; generated by \`${name} completions zsh\` from its options.
# Install: ${name} completions zsh > ~/.zfunc/_${name}, with fpath+=(~/.zfunc) before compinit;
# or, after compinit: source <(${name} completions zsh)

_${name}() {
  local curcontext="$curcontext" state line
  typeset -A opt_args
  _arguments -C \\
    ${program.options.map(zshOption).join(" \\\n    ")} \\
    '1: :->command' \\
    '*:: :->argument'
  case $state in
    command)
      local -a commands
      commands=(
${subcommands.join("\n")}
      )
      _describe -t commands '${name} command' commands
      ;;
    argument)
      curcontext="\${curcontext%:*:*}:${name}-$line[1]:"
      case $line[1] in
${cases.join("\n")}
      esac
      ;;
  esac
}

if [[ $funcstack[1] == _${name} ]]; then
  _${name} "$@"
else
  compdef _${name} ${name}
fi
`;
}

// ---------------------------------------------------------------- fish

/** Quotes for fish inside single quotes. */
function fishQuote(text: string): string {
  return `'${text.replace(/(['\\])/g, "\\$1")}'`;
}

function fishValue(value: ValueKind, listFunction: string): string {
  switch (value.kind) {
    case "words":
      return value.list
        ? `-x -a ${fishQuote(`(__fish_complete_list , ${listFunction})`)}`
        : `-x -a ${fishQuote(checkWords(value.words))}`;
    case "pid":
      return "-x -a '(__fish_complete_pids)'";
    case "user":
      return "-x -a '(__fish_complete_users)'";
    case "file":
      return "-r -F";
    case "none":
      return "-x";
  }
}

/**
 * The fish completion script, for `~/.config/fish/completions/procwatch.fish`.
 *
 * @example
 * ```ts
 * import { buildProgram } from "./program.ts";
 * import { commandModel, fishCompletion } from "./completions.ts";
 * console.log(fishCompletion(commandModel(buildProgram())));
 * ```
 */
export function fishCompletion(program: CommandModel): string {
  const name = program.name;
  const lines: string[] = [
    `# fish completion for ${name}; generated by \`${name} completions fish\` from its options.`,
    `# Install: ${name} completions fish > ~/.config/fish/completions/${name}.fish`,
    "",
    `complete -c ${name} -e`,
    `# Files only where a script or its arguments are expected.`,
    `complete -c ${name} -f`,
  ];
  const functions: string[] = [];
  const optionLine = (condition: string, option: OptionModel, owner: string) => {
    const parts = [`complete -c ${name} -n ${fishQuote(condition)}`];
    if (option.short !== undefined) parts.push(`-s ${option.short.slice(1)}`);
    if (option.long !== undefined) parts.push(`-l ${option.long.slice(2)}`);
    if (option.value !== null) {
      const listFunction = `__${name}_${owner}_${(option.long ?? "value").slice(2)}`.replace(
        /\W/g,
        "_",
      );
      if (option.value.kind === "words" && option.value.list) {
        functions.push(
          `function ${listFunction}`,
          `    printf '%s\\n' ${checkWords(option.value.words)}`,
          "end",
        );
      }
      parts.push(fishValue(option.value, listFunction));
    }
    parts.push(`-d ${fishQuote(option.description)}`);
    lines.push(parts.join(" "));
  };
  lines.push("", "# The program's own options and its subcommands.");
  for (const option of program.options) optionLine("__fish_use_subcommand", option, "");
  for (const command of program.commands) {
    lines.push(
      `complete -c ${name} -n __fish_use_subcommand -a ${command.name} -d ${
        fishQuote(command.description)
      }`,
    );
  }
  for (const command of program.commands) {
    const condition = `__fish_seen_subcommand_from ${command.name}`;
    lines.push("", `# ${name} ${command.name}`);
    for (const option of command.options) optionLine(condition, option, command.name);
    for (const argument of command.args.slice(0, command.passThrough ? 1 : undefined)) {
      const value = argument.value;
      const action = value.kind === "file"
        ? "-F"
        : value.kind === "none"
        ? ""
        : fishValue(value, "").replace(/^-x /, "");
      if (action !== "") {
        lines.push(
          `complete -c ${name} -n ${fishQuote(condition)} ${action} -d ${fishQuote(argument.name)}`,
        );
      }
    }
  }
  return [...functions, "", ...lines, ""].join("\n");
}

/**
 * The completion script for `shell`, generated from `program`'s command tree.
 * Throws a {@linkcode UsageError} for an unknown shell.
 *
 * @example
 * ```ts
 * import { buildProgram } from "./program.ts";
 * import { completionScript } from "./completions.ts";
 * console.log(completionScript(buildProgram(), "fish"));
 * ```
 */
export function completionScript(program: CommandUnknownOpts, shell: string): string {
  const model = commandModel(program);
  switch (shell) {
    case "bash":
      return bashCompletion(model);
    case "zsh":
      return zshCompletion(model);
    case "fish":
      return fishCompletion(model);
    default:
      throw new UsageError(`unknown shell '${shell}' (known: ${SHELLS.join(", ")})`);
  }
}
