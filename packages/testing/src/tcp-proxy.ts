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

  const close = () =>
    new Promise<void>((resolve) => {
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
    stop: close,
  };
}
