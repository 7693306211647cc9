/**
 * The procwatch command line.
 *
 * ```sh
 * deno run --allow-ffi cli.ts watch [--json] [-e exec,exit] [-p PID] ...
 * deno run --allow-ffi cli.ts wait [--any] [--timeout SECONDS] PID...
 * ```
 *
 * @module
 */

import { Command, CommanderError } from "@commander-js/extra-typings";
import { reportError, usageLine } from "./cli/errors.ts";
import { waitCommand } from "./cli/wait.ts";
import { watchCommand } from "./cli/watch.ts";
import { runCommand, scriptOutlivesMain } from "./cli/run.ts";
import { ExitCode } from "./lib/errors.ts";
import { warn } from "./cli/output.ts";

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
  for (const command of [watchCommand(), waitCommand(), runCommand()]) {
    command.exitOverride().configureOutput(outputFor(`procwatch ${command.name()}`));
    program.addCommand(command);
  }
  return program as unknown as Command;
}

/** Runs the CLI with `args` and returns the exit code. */
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

if (import.meta.main) {
  const code = await main(Deno.args);
  // A script started by `run` may still have work queued; the process ends when it is done.
  if (!scriptOutlivesMain()) Deno.exit(code);
}
