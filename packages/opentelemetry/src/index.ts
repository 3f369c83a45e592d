export { type CaasDbInstrumentation, type CaasDbInstrumentationOptions, instrumentCaasDb } from './instrumentation.js';
export { DB_CLIENT_OPERATION_DURATION } from './semantic-conventions.js';
