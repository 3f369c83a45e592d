/**
 * Signs a bearer token with JWT_SECRET, as the platform's auth service would:
 * `JWT_SECRET=... pnpm --filter messaging-service token <tenant> <subject> [expiry, e.g. 1h]`.
 */
import { loadConfig } from './config.js';
import { issueToken } from './tokens.js';

const [tenant, subject, expiry = '1h'] = process.argv.slice(2);
if (!tenant || !subject || !process.env.JWT_SECRET) {
  process.stderr.write('usage: JWT_SECRET=<secret> pnpm --filter messaging-service token <tenant> <subject> [expiry]\n');
  process.exit(2);
}
const { auth } = loadConfig();
process.stdout.write(`${await issueToken({ tenant, subject }, auth, expiry)}\n`);
