import { randomBytes } from 'node:crypto';
import { parseConfig } from '@caas-db/core';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();

const environmentSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  MONGODB_URI: z.string().min(1).optional(),
  MONGODB_DATABASE: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be 1-63 letters, digits, _ or -')
    .default('caas_messaging'),
  REDIS_URL: z.string().min(1).optional(),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters (HS256 key)'),
  JWT_ISSUER: z.string().min(1).default('caas-auth'),
  JWT_AUDIENCE: z.string().min(1).default('messaging-service'),
  CURSOR_SECRET: z.string().min(32, 'must be at least 32 characters, the same on every instance'),
  TENANT_MESSAGE_QUOTA: positiveInt.optional(),
  TENANT_WRITES_PER_SECOND: positiveInt.optional(),
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The service's configuration, validated once at start. */
export interface ServiceConfig {
  host: string;
  port: number;
  /** Unset in development: `main.ts` then starts an embedded MongoDB, and the secrets default to random ones. */
  mongodbUri: string | undefined;
  database: string;
  /** Optional: the cache then also has a shared tier, and invalidations reach every instance. */
  redisUrl: string | undefined;
  auth: { secret: string; issuer: string; audience: string };
  /** Signs page cursors: the same on every instance, so a cursor works whichever instance serves the next page. */
  cursorSecret: string;
  quotas: { messagesPerTenant: number | undefined; writesPerSecond: number | undefined };
  shutdownTimeoutMS: number;
  logLevel: z.infer<typeof environmentSchema>['LOG_LEVEL'];
}

/**
 * Reads the configuration from environment variables.
 * @throws {ConfigError} (from `@caas-db/core`) naming every invalid or missing variable.
 */
export function loadConfig(environment: Record<string, string | undefined> = process.env): ServiceConfig {
  // Empty variables count as unset, as a shell's `VAR= command` intends.
  const present: Record<string, string | undefined> = Object.fromEntries(
    Object.entries(environment).filter(([, value]) => value !== undefined && value !== ''),
  );
  if (present.MONGODB_URI === undefined) {
    // Development on the embedded MongoDB: secrets of this process only (main.ts prints tokens signed with it).
    present.JWT_SECRET ??= randomBytes(32).toString('base64url');
    present.CURSOR_SECRET ??= randomBytes(32).toString('base64url');
  }
  const parsed = parseConfig(environmentSchema, present);
  return {
    host: parsed.HOST,
    port: parsed.PORT,
    mongodbUri: parsed.MONGODB_URI,
    database: parsed.MONGODB_DATABASE,
    redisUrl: parsed.REDIS_URL,
    auth: { secret: parsed.JWT_SECRET, issuer: parsed.JWT_ISSUER, audience: parsed.JWT_AUDIENCE },
    cursorSecret: parsed.CURSOR_SECRET,
    quotas: { messagesPerTenant: parsed.TENANT_MESSAGE_QUOTA, writesPerSecond: parsed.TENANT_WRITES_PER_SECOND },
    shutdownTimeoutMS: parsed.SHUTDOWN_TIMEOUT_MS,
    logLevel: parsed.LOG_LEVEL,
  };
}
