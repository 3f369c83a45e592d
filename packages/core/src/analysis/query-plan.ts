import type { Document } from 'mongodb';

/** What a query plan does, in the terms that matter for tuning. */
export interface PlanSummary {
  /** The index the winning plan uses, or undefined for a collection scan. */
  index: string | undefined;
  collectionScan: boolean;
  /** The plan needs no document fetch: every field it returns comes from the index. */
  covered: boolean;
  /** The server sorted in memory (no index gave the order). */
  inMemorySort: boolean;
  keysExamined: number | undefined;
  docsExamined: number | undefined;
  returned: number | undefined;
  /** The stages of the winning plan, outermost first. */
  stages: string[];
}

function stagesOf(plan: Document | undefined, into: Document[] = []): Document[] {
  if (!plan) return into;
  into.push(plan);
  if (plan.inputStage) stagesOf(plan.inputStage as Document, into);
  for (const input of (plan.inputStages as Document[] | undefined) ?? []) stagesOf(input, into);
  return into;
}

/** Summarizes the output of `explain('executionStats')` of a find (also a `$cursor` stage of an aggregate). */
export function summarizePlan(explained: Document): PlanSummary {
  const planner = (explained.queryPlanner ?? explained.stages?.[0]?.$cursor?.queryPlanner) as Document | undefined;
  const winning = (planner?.winningPlan?.queryPlan ?? planner?.winningPlan) as Document | undefined;
  const stages = stagesOf(winning);
  const names = stages.map((stage) => String(stage.stage));
  const indexStage = stages.find((stage) => stage.stage === 'IXSCAN' || stage.stage === 'DISTINCT_SCAN' || stage.stage === 'COUNT_SCAN');
  const execution = (explained.executionStats ?? explained.stages?.[0]?.$cursor?.executionStats) as Document | undefined;
  return {
    index: indexStage ? String(indexStage.indexName) : undefined,
    collectionScan: names.includes('COLLSCAN'),
    covered: indexStage !== undefined && !names.includes('FETCH') && !names.includes('COLLSCAN'),
    inMemorySort: names.includes('SORT'),
    keysExamined: execution?.totalKeysExamined as number | undefined,
    docsExamined: execution?.totalDocsExamined as number | undefined,
    returned: execution?.nReturned as number | undefined,
    stages: names,
  };
}
