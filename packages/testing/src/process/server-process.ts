import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { TestServerError } from '../errors.js';

/** A server process started by a test fixture. */
export interface ServerProcess {
  readonly pid: number;
  /** The first match of the ready pattern. */
  readonly readyMatch: RegExpExecArray;
  /** Ends the process: closes its stdin (the launchers exit on EOF), then SIGTERM, then SIGKILL. */
  stop(): Promise<void>;
}

/** Options of {@link startServerProcess}. */
export interface StartServerProcessOptions {
  /** What the server is, for error messages. */
  label: string;
  command: string;
  args: readonly string[];
  /** A line on stdout that says the server is ready. */
  readyPattern: RegExp;
  /** @default 60000 */
  readyTimeoutMS?: number;
}

function exited(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts a server and waits for its ready line. Every server it starts watches its stdin and
 * exits when the pipe closes, so the death of the test process (even by SIGKILL) stops it too.
 */
export async function startServerProcess(options: StartServerProcessOptions): Promise<ServerProcess> {
  const child = spawn(options.command, options.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const output: string[] = [];
  const remember = (line: string) => {
    output.push(line);
    if (output.length > 40) output.shift();
  };
  createInterface({ input: child.stderr }).on('line', remember);
  const lines = createInterface({ input: child.stdout });

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = exited(child);
    child.stdin.end();
    const escalate = setTimeout(() => child.kill('SIGTERM'), 5000);
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(escalate);
    clearTimeout(kill);
  };

  const readyMatch = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timeoutMS = options.readyTimeoutMS ?? 60_000;
    const fail = (reason: string) => {
      clearTimeout(timer);
      reject(new TestServerError(`${options.label} did not start: ${reason}\n${output.join('\n')}`));
    };
    const timer = setTimeout(() => {
      void stop();
      fail(`no ready line within ${timeoutMS} ms`);
    }, timeoutMS);
    child.once('error', (error) => fail(error.message));
    child.once('exit', (code, signal) => fail(`exited with ${signal ?? `code ${code}`}`));
    lines.on('line', (line) => {
      remember(line);
      const match = options.readyPattern.exec(line);
      if (match) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(match);
      }
    });
  });
  // Keep draining output so a chatty server never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  return { pid: child.pid ?? -1, readyMatch, stop };
}
