import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// Docker cannot run on this machine: the local-development setup is checked for structure here.
const root = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));
const compose = parse(readFileSync(root('compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<
    string,
    Record<string, unknown> & {
      command?: string[] | string;
      healthcheck?: { test: string[] };
      depends_on?: Record<string, { condition: string }>;
    }
  >;
  volumes: Record<string, unknown>;
};
const nodes = ['mongo1', 'mongo2', 'mongo3'] as const;
const ports = ['27017', '27018', '27019'];

describe('compose.yaml', () => {
  it('runs three MongoDB 7 nodes of one replica set with keyfile auth and health checks', () => {
    nodes.forEach((name, index) => {
      const node = compose.services[name];
      expect(node?.image, name).toMatch(/^mongo:7\./);
      const command = node?.command as string[];
      expect(command.slice(0, 1)).toEqual(['mongod']);
      expect(command.join(' ')).toContain('--replSet rs0');
      expect(command.join(' ')).toContain(`--port ${ports[index]}`);
      expect(command.join(' ')).toContain('--keyFile /keyfile/key');
      expect(node?.volumes as string[]).toContain('keyfile:/keyfile');
      expect(node?.healthcheck?.test.join(' ')).toContain(`--port ${ports[index]}`);
      expect(node?.depends_on?.keyfile?.condition).toBe('service_completed_successfully');
      if (name !== 'mongo1') expect(node?.network_mode).toBe('service:mongo1');
    });
    expect(compose.services.mongo1?.ports).toEqual(ports.map((port) => `${port}:${port}`));
    // mongod refuses a keyfile others can read.
    expect(String(compose.services.keyfile?.command)).toMatch(/chmod 400 \/keyfile\/key/);
  });

  it('initiates the replica set once all nodes are healthy and creates a SCRAM-SHA-256 user', () => {
    const init = compose.services['mongo-init'];
    for (const name of nodes) expect(init?.depends_on?.[name]?.condition).toBe('service_healthy');
    const script = String(init?.command);
    expect(script).toContain("_id: 'rs0'");
    for (const port of ports) expect(script).toContain(`host: 'localhost:${port}'`);
    expect(script).toMatch(/createUser\([\s\S]*user: 'caas'[\s\S]*mechanisms: \['SCRAM-SHA-256'\]/);
    expect(init?.network_mode).toBe('service:mongo1');
  });

  it('runs Redis with a health check, and the docs give a URI that matches', () => {
    expect(compose.services.redis?.image).toMatch(/^redis:7/);
    expect(compose.services.redis?.ports).toEqual(['6379:6379']);
    expect(compose.services.redis?.healthcheck?.test.join(' ')).toContain('redis-cli ping');
    const docs = readFileSync(root('docs/local-development.md'), 'utf8');
    expect(docs).toContain(
      'mongodb://caas:caas-dev-password@localhost:27017,localhost:27018,localhost:27019/?replicaSet=rs0&authSource=admin&authMechanism=SCRAM-SHA-256',
    );
    expect(docs).toMatch(/not started on this machine/i);
  });
});
