import { accessSync, constants } from 'node:fs';
import type { MongoClientOptions, ReadConcernLevel, ReadPreferenceMode, TagSet } from 'mongodb';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseConfig } from '../validation-issues.js';

function readableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

const milliseconds = z
  .number()
  .int()
  .min(0)
  .max(24 * 60 * 60 * 1000);
const filePath = z.string().min(1).refine(readableFile, 'file does not exist or is not readable');

const poolSchema = z
  .strictObject({
    /** Connections kept open per server even when idle. @default 0 */
    minSize: z.number().int().min(0).max(1000).optional(),
    /** Most connections per server. @default 100 */
    maxSize: z.number().int().min(1).max(1000).optional(),
    /** Most connections being established at once per server. @default 2 */
    maxConnecting: z.number().int().min(1).max(100).optional(),
    /** An idle connection is closed after this long. @default 0 (never) */
    maxIdleTimeMS: milliseconds.optional(),
    /** How long an operation may wait for a free connection. @default 0 (no limit) */
    waitQueueTimeoutMS: milliseconds.optional(),
  })
  .refine((pool) => pool.minSize === undefined || pool.maxSize === undefined || pool.minSize <= pool.maxSize, {
    message: 'minSize must not exceed maxSize',
    path: ['minSize'],
  });

const timeoutsSchema = z.strictObject({
  /** Time to establish a TCP/TLS connection. @default 10000 */
  connectMS: milliseconds.optional(),
  /** Time a socket may stay silent during an operation. @default 0 (no limit) */
  socketMS: milliseconds.optional(),
  /** Time to find a suitable server before an operation fails. @default 30000 */
  serverSelectionMS: milliseconds.optional(),
  /** Interval of the driver's server monitoring. @default 10000 */
  heartbeatFrequencyMS: z.number().int().min(500).max(3_600_000).optional(),
});

const tlsSchema = z.strictObject({
  /** Use TLS. Implied when a file is given. */
  enabled: z.boolean().optional(),
  /** PEM file of the certificate authorities to trust. */
  caFile: filePath.optional(),
  /** PEM file with the client certificate and its private key (for X.509 or mutual TLS). */
  certificateKeyFile: filePath.optional(),
  /** Password of the private key in `certificateKeyFile`. */
  certificateKeyFilePassword: z.string().min(1).optional(),
  /** Accept invalid server certificates. Development only. @default false */
  allowInvalidCertificates: z.boolean().optional(),
});

const authMechanisms = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'MONGODB-X509', 'MONGODB-AWS', 'MONGODB-OIDC'] as const;

const authSchema = z
  .strictObject({
    /** The authentication mechanism. SCRAM-SHA-256 is the recommended default for self-hosted MongoDB. */
    mechanism: z.enum(authMechanisms),
    username: z.string().min(1).max(1024).optional(),
    password: z.string().min(1).max(1024).optional(),
    /** The database holding the user. @default 'admin' */
    source: z.string().min(1).max(63).optional(),
  })
  .superRefine((auth, context) => {
    if (auth.mechanism.startsWith('SCRAM')) {
      if (!auth.username) context.addIssue({ code: 'custom', path: ['username'], message: `required for ${auth.mechanism}` });
      if (!auth.password) context.addIssue({ code: 'custom', path: ['password'], message: `required for ${auth.mechanism}` });
    }
    if (auth.mechanism === 'MONGODB-X509' && auth.password) {
      context.addIssue({ code: 'custom', path: ['password'], message: 'MONGODB-X509 takes no password' });
    }
  });

const readPreferenceModes = ['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'] as const;

const readPreferenceSchema = z
  .strictObject({
    mode: z.enum(readPreferenceModes),
    /** Tag sets tried in order, e.g. `[{ region: 'eu-west' }, {}]`. */
    tags: z
      .array(z.record(z.string().min(1), z.string()))
      .max(16)
      .optional(),
    /** Secondaries lagging more than this are not read from. At least 90 (a server rule). */
    maxStalenessSeconds: z.number().int().min(90).max(86_400).optional(),
  })
  .refine((preference) => preference.mode !== 'primary' || (!preference.tags?.length && preference.maxStalenessSeconds === undefined), {
    message: "mode 'primary' takes no tags and no maxStalenessSeconds",
    path: ['mode'],
  });

const writeConcernSchema = z.strictObject({
  /** Acknowledgements required: a count of nodes or 'majority'. */
  w: z.union([z.number().int().min(0).max(50), z.literal('majority')]).optional(),
  /** Wait for the journal. */
  journal: z.boolean().optional(),
  /** Give up waiting for acknowledgements after this long. */
  wtimeoutMS: milliseconds.optional(),
});

const retrySchema = z
  .strictObject({
    /** Retries after the first attempt, for transient errors only. @default 3 */
    retries: z.number().int().min(0).max(10).optional(),
    /** First backoff delay. @default 50 */
    minDelayMS: z.number().int().min(1).max(60_000).optional(),
    /** Largest backoff delay. @default 2000 */
    maxDelayMS: z.number().int().min(1).max(600_000).optional(),
    /** No retry starts once this much time has passed since the first attempt. @default 15000 */
    maxElapsedMS: z.number().int().min(1).max(3_600_000).optional(),
  })
  .refine((retry) => retry.minDelayMS === undefined || retry.maxDelayMS === undefined || retry.minDelayMS <= retry.maxDelayMS, {
    message: 'minDelayMS must not exceed maxDelayMS',
    path: ['minDelayMS'],
  });

const monitoringSchema = z.strictObject({
  /** Commands slower than this emit `command:slow`. @default 100 */
  slowCommandMS: z.number().int().min(0).max(3_600_000).optional(),
  /**
   * The driver's wire-level command monitoring: every wire command (each `getMore` too) with the
   * server's address and the request id, and what the tenancy isolation auditor and
   * `SlowQueryLog` watch. Off by default: the driver then decodes every reply a second time for
   * its event, about 40 µs of client CPU per single read and 180 µs per page of 50 (measured in
   * docs/performance.md). With it off, the `command:*` events are timed at the library's choke
   * point instead, one per command the library sends. @default false
   */
  wire: z.boolean().optional(),
});

const databaseName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[^/\\. "$*<>:|?\0]+$/, 'must not contain / \\ . space " $ * < > : | ? or NUL');

/** The zod schema of {@link DataClientConfig}; exported so services can embed it in their own config. */
export const dataClientConfigSchema = z.strictObject({
  /** A MongoDB connection string (`mongodb://` or `mongodb+srv://`). */
  uri: z
    .string()
    .max(8192)
    .regex(/^mongodb(\+srv)?:\/\/[^\s]+$/, 'must be a mongodb:// or mongodb+srv:// connection string without spaces'),
  /** The database that holds caas-db's collections. */
  database: databaseName,
  /** Sent to the server in the handshake and shown in its logs. @default 'caas-db' */
  appName: z.string().min(1).max(128).optional(),
  pool: poolSchema.optional(),
  timeouts: timeoutsSchema.optional(),
  tls: tlsSchema.optional(),
  auth: authSchema.optional(),
  readPreference: readPreferenceSchema.optional(),
  readConcern: z.enum(['local', 'available', 'majority', 'linearizable', 'snapshot']).optional(),
  writeConcern: writeConcernSchema.optional(),
  /** The driver's own retryable writes (needs a replica set). @default true */
  retryWrites: z.boolean().optional(),
  /** The driver's own retryable reads. @default true */
  retryReads: z.boolean().optional(),
  /** Wire compression, in order of preference. */
  compressors: z
    .array(z.enum(['zstd', 'snappy', 'zlib', 'none']))
    .max(4)
    .optional(),
  /** caas-db's retry of transient failures, on top of the driver's single retry. */
  retry: retrySchema.optional(),
  monitoring: monitoringSchema.optional(),
  /** Connect to the given host only, without discovering a replica set. */
  directConnection: z.boolean().optional(),
  /**
   * The latency window of server selection: among suitable servers (mongos routers, or secondaries
   * for secondary reads), only those within this many ms of the fastest are chosen. @default 15
   */
  localThresholdMS: milliseconds.optional(),
  /** The URI is a load balancer in front of mongos routers or a serverless deployment (one host, no direct connection). */
  loadBalanced: z.boolean().optional(),
});

/** Configuration of {@link createDataClient}. Validated at construction; see each field's TSDoc. */
export type DataClientConfig = z.input<typeof dataClientConfigSchema>;

/** Retry settings after defaults were applied. */
export interface RetrySettings {
  retries: number;
  minDelayMS: number;
  maxDelayMS: number;
  maxElapsedMS: number;
}

/** A validated configuration with every default applied. */
export interface ResolvedDataClientConfig {
  readonly uri: string;
  readonly database: string;
  readonly retry: RetrySettings;
  readonly slowCommandMS: number;
  /** Whether the driver's wire-level command monitoring is on (`monitoring.wire`). */
  readonly wireMonitoring: boolean;
  readonly driverOptions: MongoClientOptions;
}

/** The defaults, in one place. */
export const configDefaults = {
  appName: 'caas-db',
  retry: { retries: 3, minDelayMS: 50, maxDelayMS: 2000, maxElapsedMS: 15_000 },
  slowCommandMS: 100,
} as const;

/**
 * Validates a configuration and maps it onto driver options.
 * @throws {ConfigError} naming every invalid field.
 */
export function resolveDataClientConfig(input: unknown): ResolvedDataClientConfig {
  const config = parseConfig(dataClientConfigSchema, input);
  // A load balancer hides the servers behind it: the driver cannot also connect to one directly.
  if (config.loadBalanced && config.directConnection)
    throw new ConfigError([{ path: 'loadBalanced', message: 'cannot be combined with directConnection', code: 'custom' }]);
  return {
    uri: config.uri,
    database: config.database,
    retry: {
      retries: config.retry?.retries ?? configDefaults.retry.retries,
      minDelayMS: config.retry?.minDelayMS ?? configDefaults.retry.minDelayMS,
      maxDelayMS: config.retry?.maxDelayMS ?? configDefaults.retry.maxDelayMS,
      maxElapsedMS: config.retry?.maxElapsedMS ?? configDefaults.retry.maxElapsedMS,
    },
    slowCommandMS: config.monitoring?.slowCommandMS ?? configDefaults.slowCommandMS,
    wireMonitoring: config.monitoring?.wire ?? false,
    driverOptions: toDriverOptions(config),
  };
}

function toDriverOptions(config: z.output<typeof dataClientConfigSchema>): MongoClientOptions {
  const options: MongoClientOptions = {
    appName: config.appName ?? configDefaults.appName,
    monitorCommands: config.monitoring?.wire ?? false,
  };
  const { pool, timeouts, tls, auth, readPreference, writeConcern } = config;
  if (pool?.minSize !== undefined) options.minPoolSize = pool.minSize;
  if (pool?.maxSize !== undefined) options.maxPoolSize = pool.maxSize;
  if (pool?.maxConnecting !== undefined) options.maxConnecting = pool.maxConnecting;
  if (pool?.maxIdleTimeMS !== undefined) options.maxIdleTimeMS = pool.maxIdleTimeMS;
  if (pool?.waitQueueTimeoutMS !== undefined) options.waitQueueTimeoutMS = pool.waitQueueTimeoutMS;
  if (timeouts?.connectMS !== undefined) options.connectTimeoutMS = timeouts.connectMS;
  if (timeouts?.socketMS !== undefined) options.socketTimeoutMS = timeouts.socketMS;
  if (timeouts?.serverSelectionMS !== undefined) options.serverSelectionTimeoutMS = timeouts.serverSelectionMS;
  if (timeouts?.heartbeatFrequencyMS !== undefined) options.heartbeatFrequencyMS = timeouts.heartbeatFrequencyMS;
  if (tls) {
    options.tls = tls.enabled ?? true;
    if (tls.caFile) options.tlsCAFile = tls.caFile;
    if (tls.certificateKeyFile) options.tlsCertificateKeyFile = tls.certificateKeyFile;
    if (tls.certificateKeyFilePassword) options.tlsCertificateKeyFilePassword = tls.certificateKeyFilePassword;
    if (tls.allowInvalidCertificates !== undefined) options.tlsAllowInvalidCertificates = tls.allowInvalidCertificates;
  }
  if (auth) {
    options.authMechanism = auth.mechanism;
    if (auth.username) options.auth = { username: auth.username, ...(auth.password && { password: auth.password }) };
    if (auth.source) options.authSource = auth.source;
  }
  if (readPreference) {
    options.readPreference = readPreference.mode as ReadPreferenceMode;
    if (readPreference.tags) options.readPreferenceTags = readPreference.tags as TagSet[];
    if (readPreference.maxStalenessSeconds !== undefined) options.maxStalenessSeconds = readPreference.maxStalenessSeconds;
  }
  if (config.readConcern) options.readConcernLevel = config.readConcern as ReadConcernLevel;
  if (writeConcern) {
    options.writeConcern = {
      ...(writeConcern.w !== undefined && { w: writeConcern.w }),
      ...(writeConcern.journal !== undefined && { journal: writeConcern.journal }),
      ...(writeConcern.wtimeoutMS !== undefined && { wtimeoutMS: writeConcern.wtimeoutMS }),
    };
  }
  if (config.retryWrites !== undefined) options.retryWrites = config.retryWrites;
  if (config.retryReads !== undefined) options.retryReads = config.retryReads;
  if (config.compressors) options.compressors = config.compressors;
  if (config.directConnection !== undefined) options.directConnection = config.directConnection;
  if (config.localThresholdMS !== undefined) options.localThresholdMS = config.localThresholdMS;
  if (config.loadBalanced !== undefined) options.loadBalanced = config.loadBalanced;
  return options;
}
