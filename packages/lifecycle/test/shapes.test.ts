import {
  conversationsDefinition,
  eventsDefinition,
  filesDefinition,
  groupsDefinition,
  indexServes,
  messagesDefinition,
  metricsDefinition,
  type RepositoryDefinition,
  settingsDefinition,
  usersDefinition,
} from '@caas-db/core';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { checkpointsDefinition, holdsDefinition, lifecycleQueryShapes, policiesDefinition } from '../src/index.js';

const definitions: RepositoryDefinition<z.ZodObject>[] = [
  conversationsDefinition,
  messagesDefinition,
  eventsDefinition,
  metricsDefinition,
  filesDefinition,
  groupsDefinition,
  settingsDefinition,
  usersDefinition(),
  policiesDefinition,
  holdsDefinition,
  checkpointsDefinition,
] as never;

describe('the lifecycle’s query shapes', () => {
  const cases = definitions.flatMap((definition) =>
    [
      ...(lifecycleQueryShapes[definition.collection] ?? []),
      ...(definition.collection.startsWith('l') || definition.collection.startsWith('r') ? definition.queries : []),
    ].map((shape) => [definition.collection, shape, definition] as const),
  );

  it.each(cases)('%s: %o is served by a declared index (prefix scans: by its equality prefix)', (_collection, shape, definition) => {
    if (shape.name.includes('prefix')) {
      // Erasure and export read one tenant's (or one user's) documents: bounded by an index whose
      // leading keys are the equality fields; the rest is filtered or sorted after it.
      expect(shape.equality).toContain('tenant_id');
      const { sort: _sort, ...unsorted } = shape;
      expect(definition.indexes.filter((index) => indexServes(index, unsorted)).map((index) => index.name)).not.toEqual([]);
    } else {
      expect(definition.indexes.filter((index) => indexServes(index, shape)).map((index) => index.name)).not.toEqual([]);
    }
  });
});
