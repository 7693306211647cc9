/**
 * The whole command tree of the procwatch command line (commander), loaded by
 * `cli.ts` for every command (a plain `wait` is armed before it, see cli.ts).
 *
 * @module
 */

import { Argument, Command, CommanderError } from "@commander-js/extra-typings";
import { completionScript, SHELLS } from "./completions.ts";
import { helpAfter } from "./help.ts";
import { manPage } from "./man.ts";
import { reportError, usageLine } from "./errors.ts";
import { waitCommand } from "./wait.ts";
import { watchCommand } from "./watch.ts";
import { runCommand } from "./run.ts";
import { BrokenPipeError, finishOutput, stdout, warn } from "../lib/format/mod.ts";
import { ExitCode } from "./exit_codes.ts";

/**
 * Errors of the option parser go to stderr as one `procwatch:` line naming
 * the help to read. Colours are decided here because commander would read
 * CLICOLOR_FORCE from the environment, which needs --allow-env.
 */
function outputFor(command: string) {
  return {
    outputError: (text: string) => warn(usageLine(text, command)),
    getOutHasColors: () => false,
    getErrHasColors: () => false,
  };
}

/** Builds the whole command tree. */
export function buildProgram(): Command {
  const program = new Command("procwatch")
    .description("watch every process event of this Linux machine (proc connector)")
    .version("0.1.0")
    .showHelpAfterError(false)
    .exitOverride()
    .enablePositionalOptions()
    .configureOutput(outputFor("procwatch"));
  program.addHelpText("after", helpAfter(""));
  const commands = [
    watchCommand(),
    waitCommand(Command),
    runCommand(),
    completionsCommand(),
    manCommand(),
  ];
  for (const command of commands) {
    command.exitOverride().configureOutput(outputFor(`procwatch ${command.name()}`))
      .addHelpText("after", helpAfter(command.name()));
    program.addCommand(command);
  }
  return program as unknown as Command;
}

/** Writes `text` to stdout; a reader that left early (`| head`) is not an error. */
async function print(text: string): Promise<void> {
  try {
    const out = stdout();
    out.line(text.endsWith("\n") ? text.slice(0, -1) : text);
    out.flush();
    await finishOutput();
  } catch (error) {
    if (!(error instanceof BrokenPipeError)) throw error;
  }
}

/** `procwatch completions SHELL`: the completion script, generated from the command tree. */
function completionsCommand(): Command {
  return new Command("completions")
    .description("print the shell completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "the shell").choices(SHELLS))
    .action(async (shell, _options, command) => {
      await print(completionScript(command.parent ?? command, shell));
    }) as unknown as Command;
}

/** `procwatch man`: the man page in roff, generated from the command tree. */
function manCommand(): Command {
  return new Command("man")
    .description("print the man page (roff): procwatch man | man -l -")
    .action(async (_options, command) => {
      await print(manPage(command.parent ?? command));
    }) as unknown as Command;
}

/** Runs the CLI with `args` through commander and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  Deno.exitCode = 0;
  try {
    await buildProgram().parseAsync(args, { from: "user" });
    return Deno.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : ExitCode.USAGE;
    }
    return reportError(error);
  }
}
