// How iapp-srv, iapp-clt and iapp-proxy end: one place for exit codes and error lines.
import { UsageError } from './args.js';

/**
 * Runs a program's `main(argv)` and ends the process with its exit code. A UsageError (a bad
 * flag) prints one line on stderr, `<program>: <message> (see <program> --help)`, and exits 2
 * (what iapp-clt always did; iapp-srv and iapp-proxy printed a second line); any other failure
 * prints `<program>: <message>` and exits 1 (iapp-clt used to crash with a stack trace).
 * `exit: 'now'` ends with process.exit, as iapp-clt always has (kept: nothing shows that its runs
 * leave no handle open); otherwise the code is set and the process ends when its event loop is
 * empty, after stdout has drained.
 */
export async function runCli(program: string, main: (argv: string[]) => Promise<number>, options: { exit?: 'now' | 'drain' } = {}): Promise<void> {
  let code: number;
  try {
    code = await main(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${program}: ${e.message} (see ${program} --help)\n`);
      code = 2;
    } else {
      process.stderr.write(`${program}: ${(e as Error).message}\n`);
      code = 1;
    }
  }
  if (options.exit === 'now') process.exit(code);
  process.exitCode = code;
}
