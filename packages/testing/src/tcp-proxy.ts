import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A loopback TCP proxy for fault tests: cut the network between a client and its server. */
export interface TcpProxy {
  /** The port the proxy listens on (kept across {@link cut} and {@link restore}). */
  readonly port: number;
  /** Connections forwarded so far. */
  readonly connections: number;
  /** Drops every open connection and refuses new ones, as a dead server would. */
  cut(): Promise<void>;
  /**
   * A one-way partition: requests still reach the server (and are applied), responses are
   * discarded until {@link deliverResponses}. The client sees a timeout, not a reset.
   */
  dropResponses(): void;
  /** Responses flow again (those dropped meanwhile are lost). */
  deliverResponses(): void;
  /** Holds every response for `ms` before delivering it (0 to stop delaying). */
  delayResponses(ms: number): void;
  /**
   * Breaks the next `count` connections that carry a response in the middle of it: the first part
   * of the response (half of the chunk received, at least one byte when it has two) is forwarded,
   * then both sides of the connection are destroyed. The request was delivered (and applied); the
   * client sees a truncated reply and a reset. Resolves once `count` connections were broken that
   * way, or when the proxy is cut or stopped, or `cutMidStream` is called again (`0` disarms).
   */
  cutMidStream(count?: number): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  /** Closes the proxy for good. */
  stop(): Promise<void>;
}

/**
 * Starts a proxy on a free loopback port that forwards to `target` (`host:port`).
 *
 * @example
 * ```ts
 * const proxy = await startTcpProxy('127.0.0.1:27017');
 * const client = createDataClient({ uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`, database: 'x' });
 * await proxy.cut();      // operations now fail with network errors...
 * await proxy.restore();  // ...and succeed again
 * ```
 */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const separator = target.lastIndexOf(':');
  const host = target.slice(0, separator);
  const targetPort = Number(target.slice(separator + 1));
  const sockets = new Set<Socket>();
  let connections = 0;
  let port = 0;
  let server: Server | undefined;
  let dropping = false;
  let delayMS = 0;
  /** Connections still to break mid-response, and who waits for them. */
  let midStreamCuts = 0;
  let midStreamDone: (() => void) | undefined;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const next = createServer((client) => {
        connections += 1;
        const upstream = createConnection({ host, port: targetPort });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream);
        upstream.on('data', (chunk: Buffer) => {
          if (dropping) return;
          if (midStreamCuts > 0) {
            midStreamCuts -= 1;
            const part = chunk.subarray(0, Math.floor(chunk.length / 2));
            const breakNow = () => {
              if (client.writable && part.length > 0) client.write(part);
              // Destroyed only once the part is flushed, so the client really reads half a reply.
              client.end(() => client.destroy());
              upstream.destroy();
            };
            if (delayMS === 0) breakNow();
            else setTimeout(breakNow, delayMS);
            if (midStreamCuts === 0) releaseMidStream();
            return;
          }
          if (delayMS === 0) client.write(chunk);
          else setTimeout(() => client.writable && client.write(chunk), delayMS);
        });
      });
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        const address = next.address();
        if (typeof address === 'object' && address) port = address.port;
        server = next;
        resolve();
      });
    });

  const releaseMidStream = () => {
    midStreamCuts = 0;
    const done = midStreamDone;
    midStreamDone = undefined;
    done?.();
  };

  const close = () =>
    new Promise<void>((resolve) => {
      releaseMidStream();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });

  await listen();
  return {
    get port() {
      return port;
    },
    get connections() {
      return connections;
    },
    cut: close,
    restore: listen,
    dropResponses: () => {
      dropping = true;
    },
    deliverResponses: () => {
      dropping = false;
    },
    delayResponses: (ms) => {
      delayMS = ms;
    },
    cutMidStream: (count = 1) => {
      releaseMidStream();
      if (count <= 0) return Promise.resolve();
      midStreamCuts = count;
      return new Promise<void>((resolve) => {
        midStreamDone = resolve;
      });
    },
    stop: close,
  };
}
