import { ConfigError, createDataClient, createDataLayer, type DataClient, type DataLayer } from '@caas-db/core';
import { createTenancy, type Tenancy } from '@caas-db/tenancy';
import type { Command } from 'commander';
import { type CliConfig, resolveConfig } from './config.js';
import { interruptSignal } from './interrupt.js';
import { Output } from './output.js';

/** An open connection of a command: closed when the command ends. */
export interface Connection {
  client: DataClient;
  /** The data layer, with the tenancy plugin (the configured strategy). */
  data: DataLayer;
  tenancy: Tenancy;
}

/** What every command's action receives. */
export interface CommandContext {
  /** The resolved configuration (flags, environment, file, defaults). */
  readonly config: CliConfig;
  readonly output: Output;
  /** Aborted by Ctrl-C: long jobs stop at their next batch boundary. */
  readonly signal: AbortSignal;
  /** Connects on first use; the CLI closes it when the command ends. */
  connect(): Promise<Connection>;
}

/** The global options every command accepts (see docs/cli.md). */
export interface GlobalOptions {
  uri?: string;
  database?: string;
  config?: string;
  migrations?: string;
  strategy?: string;
  runBy?: string;
  json?: boolean;
}

/** Builds the context of one command run; `close` releases what it opened. */
export function createContext(command: Command): { context: CommandContext; close: () => Promise<void> } {
  const options = command.optsWithGlobals<GlobalOptions>();
  const output = new Output({ json: options.json === true });
  const config = resolveConfig({
    file: options.config,
    flags: {
      uri: options.uri,
      database: options.database,
      migrations: options.migrations,
      strategy: options.strategy,
      runBy: options.runBy,
    },
    env: process.env,
    cwd: process.cwd(),
  });
  const interrupt = interruptSignal((message) => output.note(message));
  let connection: Promise<Connection> | undefined;
  const connect = () => {
    connection ??= (async () => {
      if (!config.uri)
        throw new ConfigError([{ path: 'uri', message: 'is required: pass --uri or set MONGODB_URI', code: 'invalid_type' }]);
      const client = createDataClient({ uri: config.uri, database: config.database, timeouts: { serverSelectionMS: 10_000 } });
      const tenancy = createTenancy({
        audit: 'off',
        strategy: { default: config.strategy, ...(config.databasePrefix && { databasePrefix: config.databasePrefix }) },
      });
      const data = createDataLayer({ client, plugins: [tenancy] });
      await client.connect();
      return { client, data, tenancy };
    })();
    return connection;
  };
  return {
    context: { config, output, signal: interrupt.signal, connect },
    close: async () => {
      interrupt.dispose();
      if (connection) await (await connection.catch(() => undefined))?.client.close();
    },
  };
}
