import type { Capabilities, CapabilityName } from '@caas-db/core';
import type { MongoBackend } from '../mongo/start-mongo.js';

/** What the global setup started, handed to every test file through vitest's `inject`. */
export interface TestEnvironment {
  mongo: { uri: string; backend: MongoBackend; description: string; startupMS: number };
  redis: { url: string; backend: 'external' | 'redis-server'; description: string; startupMS: number };
  /** What the MongoDB server supports, probed once per run. */
  capabilities: Capabilities;
}

/** The environment variable through which the global setup tells the summary reporter what it started. */
export const TEST_ENVIRONMENT_VARIABLE = 'CAAS_DB_TEST_ENVIRONMENT';

declare module 'vitest' {
  export interface ProvidedContext {
    caasDb: TestEnvironment;
  }
  interface TaskMeta {
    /** Capabilities whose absence skipped this test (set by `requireCapability`). */
    missingCapabilities?: CapabilityName[];
    /** Why this test was skipped. */
    skipReason?: string;
  }
}
