import type { Redis } from 'ioredis';

/** A message on the bus: which tags an instance invalidated. */
export interface InvalidationMessage {
  /** The instance that wrote; it ignores its own messages. */
  instance: string;
  tags: string[];
}

/**
 * Redis pub/sub carrying invalidations between instances, so each drops its in-process copies
 * when any instance writes. It uses a connection of its own (a subscribed connection can do
 * nothing else); ioredis resubscribes after a reconnect.
 */
export class InvalidationBus {
  readonly #publisher: Redis;
  readonly #subscriber: Redis;
  readonly #channel: string;
  readonly #instance: string;

  constructor(
    redis: Redis,
    channel: string,
    instance: string,
    onMessage: (message: InvalidationMessage) => void,
    onError: (error: unknown) => void,
  ) {
    this.#publisher = redis;
    this.#channel = channel;
    this.#instance = instance;
    this.#subscriber = redis.duplicate({ enableOfflineQueue: true });
    this.#subscriber.on('error', onError);
    this.#subscriber.on('message', (channelName: string, raw: string) => {
      if (channelName !== this.#channel) return;
      try {
        const message = JSON.parse(raw) as InvalidationMessage;
        if (message.instance !== this.#instance && Array.isArray(message.tags)) onMessage(message);
      } catch (error) {
        onError(error);
      }
    });
    this.#subscriber.subscribe(this.#channel).catch(onError);
  }

  /** The subscriber connection, whose reconnects mean messages may have been missed. */
  get subscriber(): Redis {
    return this.#subscriber;
  }

  async publish(tags: string[]): Promise<void> {
    await this.#publisher.publish(this.#channel, JSON.stringify({ instance: this.#instance, tags } satisfies InvalidationMessage));
  }

  async close(): Promise<void> {
    this.#subscriber.disconnect();
  }
}
