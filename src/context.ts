/**
 * The context of every command: the validated plan, its repositories opened
 * as storages, and a logger.
 */
import type { DatabaseConfig, Plan } from './config/schema.js';
import { NotFoundError, UsageError } from './errors.js';
import type { Logger } from './logging.js';
import { openStorage } from './storage/registry.js';
import type { Storage } from './storage/storage.js';

export interface PlanContext {
  plan: Plan;
  storages: Storage[];
  log: Logger;
}

/** Opens every repository of the plan. */
export async function createContext(plan: Plan, log: Logger): Promise<PlanContext> {
  return { plan, storages: await Promise.all(plan.repositories.map(openStorage)), log };
}

/** Returns `name`, or the only database of a plan that has exactly one. */
export function defaultDatabaseName(plan: Plan, name: string | undefined): string | undefined {
  return name ?? (plan.databases.length === 1 ? plan.databases[0]!.name : undefined);
}

/** Finds a database of the plan by name; without a name the plan must have exactly one. */
export function selectDatabase(plan: Plan, name: string | undefined): DatabaseConfig {
  if (name === undefined) {
    if (plan.databases.length === 1) return plan.databases[0]!;
    throw new UsageError(`the plan has ${plan.databases.length} databases; choose one with --database`, {
      code: 'usage.database',
      hint: `Pass --database with one of: ${plan.databases.map((d) => d.name).join(', ')}.`,
    });
  }
  const found = plan.databases.find((d) => d.name === name);
  if (!found) {
    throw new NotFoundError(`database ${JSON.stringify(name)} is not in the plan`, {
      code: 'plan.database',
      object: name,
      hint: `Known databases: ${plan.databases.map((d) => d.name).join(', ')}.`,
    });
  }
  return found;
}
