export { TestServerError } from './errors.js';
export { MONGO_JAVA_SERVER_VERSION } from './mongo/java-server.js';
export { type MongoBackend, type MongoTestServer, type StartMongoOptions, startMongo } from './mongo/start-mongo.js';
export { type RedisTestServer, startRedis } from './redis/start-redis.js';
export {
  type RedisNodeAddress,
  type RedisTestCluster,
  type StartRedisClusterOptions,
  startRedisCluster,
} from './redis/start-redis-cluster.js';
export { type RedisTestSentinel, type StartRedisSentinelOptions, startRedisSentinel } from './redis/start-redis-sentinel.js';
export { type SeedOptions, type SeedProgress, type SeedResult, seed } from './seed/index.js';
export { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
export { type WaitForOptions, waitFor } from './wait-for.js';
