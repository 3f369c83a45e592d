import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { startMongo, startRedis, startTcpProxy, waitFor } from '../src/index.js';

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function redisPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().trim());
    });
    socket.once('error', reject);
  });
}

const portOf = (address: string) => Number(/:(\d+)/.exec(address)?.[1]);

describe('startRedis', () => {
  it('starts a redis-server that answers PING, and stop() ends it', async () => {
    const redis = await startRedis();
    const port = portOf(redis.url);
    expect(await redisPing(port)).toBe('+PONG');
    await redis.stop();
    if (redis.backend === 'redis-server')
      await waitFor(async () => !(await accepts(port)), { what: 'the port to close', timeoutMS: 5000, intervalMS: 100 });
  });
});

describe('startMongo', () => {
  it('starts a server the driver can use, and stop() ends it', async () => {
    const mongo = await startMongo();
    const client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5000 });
    try {
      await client.db('fixture').collection('c').insertOne({ ok: true });
      expect(await client.db('fixture').collection('c').countDocuments()).toBe(1);
    } finally {
      await client.close();
      await mongo.stop();
    }
    expect(mongo.startupMS).toBeGreaterThan(0);
    if (mongo.backend !== 'external') {
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(mongo.uri)?.[1] ?? /:(\d+)\//.exec(mongo.uri)?.[1]);
      await waitFor(async () => !(await accepts(port)), { what: 'the port to close', timeoutMS: 5000, intervalMS: 100 });
    }
  });

  it('rejects an unknown forced backend with a typed error', async () => {
    await expect(startMongo({ backend: 'sqlite' as never })).rejects.toMatchObject({ code: 'E_TEST_SERVER' });
  });
});

describe('no orphans', () => {
  it('servers die with the process that started them, even on SIGKILL', async () => {
    const script = fileURLToPath(new URL('./fixtures/start-and-hang.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    const ports = await new Promise<{ mongo: number; redis: number }>((resolve, reject) => {
      let output = '';
      child.stdout.on('data', (data: Buffer) => {
        output += data.toString();
        const match = /PORTS (\d+) (\d+)/.exec(output);
        if (match) resolve({ mongo: Number(match[1]), redis: Number(match[2]) });
      });
      child.once('exit', (code) => reject(new Error(`fixture exited early with ${code}: ${output}`)));
    });
    expect(await accepts(ports.redis)).toBe(true);
    expect(await accepts(ports.mongo)).toBe(true);
    child.kill('SIGKILL');
    await waitFor(async () => !(await accepts(ports.redis)), { what: 'the port to close', timeoutMS: 10_000, intervalMS: 100 });
    await waitFor(async () => !(await accepts(ports.mongo)), { what: 'the port to close', timeoutMS: 10_000, intervalMS: 100 });
  });
});

describe('startTcpProxy', () => {
  it('forwards, cuts and restores connections on a stable port', async () => {
    const redis = await startRedis();
    const proxy = await startTcpProxy(`127.0.0.1:${portOf(redis.url)}`);
    try {
      expect(await redisPing(proxy.port)).toBe('+PONG');
      await proxy.cut();
      await expect(redisPing(proxy.port)).rejects.toThrow(/ECONNREFUSED/);
      await proxy.restore();
      expect(await redisPing(proxy.port)).toBe('+PONG');
      expect(proxy.connections).toBe(2);
    } finally {
      await proxy.stop();
      await redis.stop();
    }
  });
});
