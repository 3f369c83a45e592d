export { TestServerError } from './errors.js';
export { MONGO_JAVA_SERVER_VERSION } from './mongo/java-server.js';
export { type MongoBackend, type MongoTestServer, type StartMongoOptions, startMongo } from './mongo/start-mongo.js';
export { type RedisTestServer, startRedis } from './redis/start-redis.js';
export { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
export { type WaitForOptions, waitFor } from './wait-for.js';
