import { backfillOidcOwner } from './001-backfill-oidc-owner.js';
import type { Migration } from './migration.js';

/**
 * Every migration, in order. A new one is a module `NNN-name.ts` beside this file, added at the
 * end here (a test checks that this list and the folder agree).
 */
export const MIGRATIONS: readonly Migration[] = [backfillOidcOwner];
