/**
 * Starts the messaging service: `pnpm --filter messaging-service start`. With `MONGODB_URI` unset
 * it runs on an embedded MongoDB with two demo tenants and prints a token per demo user.
 */
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { openDataStore } from './data-store.js';
import { type DevelopmentDatabase, provisionDevelopmentTenants, startDevelopmentDatabase } from './development.js';
import { shutdown, stopOnSignals } from './lifecycle.js';

const config = loadConfig();
const log = (line: string) => process.stdout.write(`${line}\n`);

let development: DevelopmentDatabase | undefined;
if (config.mongodbUri === undefined) {
  development = await startDevelopmentDatabase();
  log(`No MONGODB_URI: using an embedded ${development.description}`);
}
const store = await openDataStore({ ...config, mongodbUri: config.mongodbUri ?? (development as DevelopmentDatabase).uri });
const app = await buildApp({ store, tokens: config.auth, logLevel: config.logLevel });

stopOnSignals(
  async () => {
    await shutdown(app, store, config.shutdownTimeoutMS);
    await development?.stop();
    log('stopped');
  },
  config.shutdownTimeoutMS + 5_000,
  log,
);

await app.listen({ host: config.host, port: config.port });
const address = app.server.address();
const url = typeof address === 'object' && address ? `http://${config.host}:${address.port}` : String(address);
if (development) {
  const tokens = await provisionDevelopmentTenants(store, config.auth);
  log('Demo tokens (valid 24 h):');
  for (const [who, token] of Object.entries(tokens)) log(`  ${who}: ${token}`);
}
log(`messaging-service listening on ${url}`);
