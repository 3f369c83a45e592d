import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { TestServerError } from '../errors.js';
import { findOnPath } from '../paths.js';
import { type ServerProcess, startServerProcess } from '../process/server-process.js';

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * redis-server cannot watch its stdin, so a tiny shell runs it and kills it when stdin closes:
 * the test process dying, by any signal, takes the server with it.
 */
const WATCHDOG = 'trap \'kill $child 2>/dev/null\' TERM INT HUP; "$@" & child=$!; cat >/dev/null; kill $child 2>/dev/null; wait $child';

/** The `redis-server` on PATH, or a typed error saying how to get one. */
export function redisServerBinary(): string {
  const binary = findOnPath('redis-server');
  if (!binary) {
    throw new TestServerError(
      'No Redis for tests: set REDIS_URL, or install redis-server ' +
        '(Debian/Ubuntu: apt-get update && apt-get install -y redis-server; macOS: brew install redis).',
    );
  }
  return binary;
}

/**
 * Starts one redis-server (or sentinel, with `--sentinel` among `extraArgs`) on `port`, loopback
 * only and with persistence off, under the stdin watchdog.
 */
export function launchRedis(
  binary: string,
  port: number,
  extraArgs: readonly string[] = [],
  readyPattern = /Ready to accept connections/,
): Promise<ServerProcess> {
  const configFile = extraArgs[0]?.endsWith('.conf') ? [extraArgs[0]] : [];
  const rest = configFile.length > 0 ? extraArgs.slice(1) : extraArgs;
  return startServerProcess({
    label: 'redis-server',
    command: 'sh',
    args: [
      '-c',
      WATCHDOG,
      'sh',
      binary,
      ...configFile,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      ...rest,
    ],
    readyPattern,
    readyTimeoutMS: 20_000,
  });
}

/** Runs `redis-cli` with `args` and resolves to its standard output. */
export function redisCli(args: readonly string[], timeoutMS = 60_000): Promise<string> {
  const binary = findOnPath('redis-cli');
  if (!binary) throw new TestServerError('redis-cli is not on PATH (it ships with redis-server)');
  return new Promise((resolve, reject) => {
    execFile(binary, [...args], { timeout: timeoutMS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new TestServerError(`redis-cli ${args.join(' ')} failed: ${stderr || error.message}`, { cause: error }));
      else resolve(stdout);
    });
  });
}

/** A field of `INFO` (`role`, `process_id`, ...) of the server on `port`. */
export async function infoField(port: number, section: string, field: string): Promise<string | undefined> {
  const info = await redisCli(['-p', String(port), 'INFO', section], 5000);
  const line = info.split(/\r?\n/).find((entry) => entry.startsWith(`${field}:`));
  return line?.slice(field.length + 1).trim();
}

/**
 * Kills with SIGKILL the redis-server this fixture started on `port` (its pid read from the server
 * itself, so only our own process is ever signalled), and waits until it no longer answers.
 */
export async function killRedisOn(port: number, ownPids: ReadonlySet<number>): Promise<number> {
  const pid = Number(await infoField(port, 'server', 'process_id'));
  if (!Number.isInteger(pid) || pid <= 0) throw new TestServerError(`no redis-server answers on port ${port}`);
  // The server runs as the child of the watchdog shell whose pid we hold: check before signalling.
  const parent = await new Promise<number>((resolve) => {
    execFile('ps', ['-o', 'ppid=', '-p', String(pid)], (error, stdout) => resolve(error ? -1 : Number(stdout.trim())));
  });
  if (!ownPids.has(parent)) throw new TestServerError(`the redis-server on port ${port} (pid ${pid}) was not started by this fixture`);
  process.kill(pid, 'SIGKILL');
  return pid;
}
