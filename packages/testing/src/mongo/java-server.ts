import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestServerError } from '../errors.js';
import { cacheDir, contentHash, findOnPath, packageRoot } from '../paths.js';
import { type ServerProcess, startServerProcess } from '../process/server-process.js';

const run = promisify(execFile);
const LAUNCHER = 'MongoJavaServerLauncher';

/** mongo-java-server's version, as pinned in `java/pom.xml`. */
export const MONGO_JAVA_SERVER_VERSION = '1.47.0';

interface PreparedLauncher {
  classpath: string;
}

let prepared: Promise<PreparedLauncher> | undefined;

/**
 * Resolves the server's classpath with Maven and compiles the launcher, once per content of
 * `java/`; later runs read both from the cache directory and start in about a second.
 */
function prepareLauncher(): Promise<PreparedLauncher> {
  prepared ??= (async () => {
    const javaDir = join(packageRoot(), 'java');
    const pom = join(javaDir, 'pom.xml');
    const source = join(javaDir, `${LAUNCHER}.java`);
    const target = join(cacheDir(), `java-server-${contentHash(pom, source)}`);
    const classpathFile = join(target, 'classpath.txt');
    const classes = join(target, 'classes');

    const cachedClasspath = existsSync(classpathFile) ? readFileSync(classpathFile, 'utf8').trim() : '';
    const jarsPresent = cachedClasspath !== '' && cachedClasspath.split(':').every((jar) => existsSync(jar));
    if (!jarsPresent || !existsSync(join(classes, `${LAUNCHER}.class`))) {
      const mvn = findOnPath('mvn');
      const javac = findOnPath('javac');
      if (!mvn || !javac) {
        throw new TestServerError(
          'No MongoDB for tests: set MONGODB_URI, provide a mongod binary (MONGOMS_SYSTEM_BINARY), ' +
            'or install Java 17+ and Maven for the mongo-java-server fallback (apt-get install openjdk-17-jdk-headless maven).',
        );
      }
      mkdirSync(target, { recursive: true });
      const pending = `${classpathFile}.${process.pid}`;
      await run(mvn, ['-q', '-B', '-f', pom, 'dependency:build-classpath', `-Dmdep.outputFile=${pending}`], {
        maxBuffer: 16 * 1024 * 1024,
      }).catch((error: unknown) => {
        throw new TestServerError(`Maven could not resolve mongo-java-server ${MONGO_JAVA_SERVER_VERSION}`, { cause: error });
      });
      const classpath = readFileSync(pending, 'utf8').trim();
      const pendingClasses = `${classes}.${process.pid}`;
      await run(javac, ['-cp', classpath, '-d', pendingClasses, source]);
      // Renames make concurrent first runs safe: each writes its own files and the last rename wins.
      renameSync(pending, classpathFile);
      if (!existsSync(join(classes, `${LAUNCHER}.class`))) renameSync(pendingClasses, classes);
    }
    return { classpath: `${readFileSync(classpathFile, 'utf8').trim()}:${classes}` };
  })().catch((error: unknown) => {
    prepared = undefined;
    throw error;
  });
  return prepared;
}

/** A running mongo-java-server. */
export interface JavaServer {
  port: number;
  process: ServerProcess;
}

/** Starts mongo-java-server on `port` (0: a free one) and returns once it accepts connections. */
export async function startJavaServer(port = 0): Promise<JavaServer> {
  const { classpath } = await prepareLauncher();
  const java = findOnPath('java');
  if (!java) throw new TestServerError('java is not on PATH');
  const serverProcess = await startServerProcess({
    label: 'mongo-java-server',
    command: java,
    args: ['-cp', classpath, LAUNCHER, String(port)],
    readyPattern: /^READY (\d+)$/,
  });
  return { port: Number(serverProcess.readyMatch[1]), process: serverProcess };
}
