import type { Cluster, Redis } from 'ioredis';
import { isCluster, type RedisClient } from './redis-client.js';

/** A message on the bus: which tags an instance invalidated. */
export interface InvalidationMessage {
  /** The instance that wrote; it ignores its own messages. */
  instance: string;
  tags: string[];
}

/** Events after which a subscriber may have missed messages (a connection dropped, a shard moved). */
const CLUSTER_TROUBLE = ['-node', '+node', 'nodeError', 'node error', '-subscriber', '+subscriber', 'subscribersReady'] as const;

/**
 * Redis pub/sub carrying invalidations between instances, so each drops its in-process copies
 * when any instance writes. It uses a connection of its own (a subscribed connection can do
 * nothing else) that resubscribes after a reconnect.
 *
 * On a standalone Redis or under Sentinel it uses PUBLISH/SUBSCRIBE. On a Cluster it uses sharded
 * pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7): the channel lives in one hash slot, so a message goes to
 * the one shard owning it and its replicas instead of being broadcast over the cluster bus to every
 * node; ioredis follows the shard when it fails over or its slot moves.
 *
 * Whenever the subscriber may have missed messages (its connection came back, or on a cluster a
 * node failed, joined or the subscribers were rebuilt) `onMaybeMissed` runs: the cache drops its
 * in-process entries.
 */
export class InvalidationBus {
  readonly #publisher: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #channel: string;
  readonly #instance: string;
  readonly #sharded: boolean;
  #subscribed = false;

  constructor(
    redis: RedisClient,
    channel: string,
    instance: string,
    onMessage: (message: InvalidationMessage) => void,
    onError: (error: unknown) => void,
    onMaybeMissed: () => void = () => undefined,
  ) {
    this.#publisher = redis;
    this.#instance = instance;
    this.#sharded = isCluster(redis);
    // A hash tag keeps the channel's slot (and so its shard) independent of the prefix's length.
    this.#channel = this.#sharded ? `{${channel}}` : channel;
    const receive = (channelName: string, raw: string) => {
      if (channelName !== this.#channel) return;
      try {
        const message = JSON.parse(raw) as InvalidationMessage;
        if (message.instance !== this.#instance && Array.isArray(message.tags)) onMessage(message);
      } catch (error) {
        onError(error);
      }
    };
    if (isCluster(redis)) {
      const subscriber: Cluster = redis.duplicate([], { shardedSubscribers: true, enableOfflineQueue: true });
      this.#subscriber = subscriber;
      subscriber.on('error', onError);
      subscriber.on('smessage', receive);
      // The client's own start-up (nodes found, subscribers started) is no trouble: listen once subscribed.
      const trouble = () => {
        if (this.#subscribed) onMaybeMissed();
      };
      for (const event of CLUSTER_TROUBLE) subscriber.on(event, trouble);
      subscriber.on('ready', trouble);
      subscriber.ssubscribe(this.#channel).then(() => {
        this.#subscribed = true;
      }, onError);
    } else {
      const subscriber: Redis = redis.duplicate({ enableOfflineQueue: true });
      this.#subscriber = subscriber;
      subscriber.on('error', onError);
      subscriber.on('message', receive);
      subscriber.on('ready', onMaybeMissed);
      subscriber.subscribe(this.#channel).then(() => {
        this.#subscribed = true;
      }, onError);
    }
  }

  /**
   * True while the subscriber is connected and has subscribed: only then does this instance hear
   * every other instance's invalidations, and so only then may it keep and serve in-process copies.
   */
  get live(): boolean {
    return this.#subscribed && this.#subscriber.status === 'ready';
  }

  /** The subscriber connection (a `Cluster` with sharded subscribers on a cluster). */
  get subscriber(): RedisClient {
    return this.#subscriber;
  }

  /** The channel messages go on (hash-tagged on a cluster). */
  get channel(): string {
    return this.#channel;
  }

  /** Tells every other instance that `tags` were invalidated. */
  async publish(tags: string[]): Promise<void> {
    const message = JSON.stringify({ instance: this.#instance, tags } satisfies InvalidationMessage);
    if (this.#sharded) await this.#publisher.spublish(this.#channel, message);
    else await this.#publisher.publish(this.#channel, message);
  }

  /** Closes the subscriber connection. */
  async close(): Promise<void> {
    this.#subscriber.disconnect();
  }
}
