/**
 * revokeAccountAccess: every session, grant, token and code of one account goes, found by the
 * indexed `accountId` field alone (older records get it from the migration 001-backfill-oidc-owner);
 * other accounts' records and the account's interactions in progress stay.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import { connectDatabase } from '../../src/db/connect.js';
import { createMigrationRunner } from '../../src/db/migration-runner.js';
import { createLogger } from '../../src/logging/logger.js';
import { ACCOUNT_ACCESS_MODELS, revokeAccountAccess } from '../../src/oidc/account-revocation.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { testDatabaseUri } from '../support/database.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });

describe('account revocation', () => {
  let connection: Connection;

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('account_revocation'), logger);
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const put = async (model: string, id: string, accountId: string, withField: boolean) => {
    const payload = model === 'Interaction' ? { session: { accountId } } : { accountId, kind: model };
    await connection
      .db!.collection(collectionName(model))
      .insertOne({ _id: id as never, payload: JSON.stringify(payload), ...(withField ? { accountId } : {}), expiresAt: new Date(Date.now() + 3_600_000) });
  };
  const count = (model: string, filter: Record<string, unknown>) => connection.db!.collection(collectionName(model)).countDocuments(filter);

  it('removes the account\'s sessions, grants and tokens, old and new records alike, and nothing else', async () => {
    for (const model of ACCOUNT_ACCESS_MODELS) {
      await put(model, `${model}-new`, 'victim', true);
      await put(model, `${model}-legacy`, 'victim', false);
      await put(model, `${model}-other`, 'bystander', true);
      // An id that merely contains the account's id is someone else's.
      await put(model, `${model}-prefix`, 'victim2', true);
    }
    await put('Interaction', 'interaction-1', 'victim', true);
    // Older records (no field) are found once the migration has run, as it does at every start.
    await createMigrationRunner({ db: connection.db!, logger }).migrate();

    const removed = await revokeAccountAccess(connection.db!, 'victim');
    expect(removed).toBe(ACCOUNT_ACCESS_MODELS.length * 2);
    for (const model of ACCOUNT_ACCESS_MODELS) {
      expect(await count(model, { _id: { $in: [`${model}-new`, `${model}-legacy`] } })).toBe(0);
      expect(await count(model, { _id: { $in: [`${model}-other`, `${model}-prefix`] } })).toBe(2);
    }
    // The interaction the reset page runs in is left to finish.
    expect(await count('Interaction', { _id: 'interaction-1' })).toBe(1);
    expect(await revokeAccountAccess(connection.db!, '')).toBe(0);
  });
});
