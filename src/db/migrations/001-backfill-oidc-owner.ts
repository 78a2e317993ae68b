import type { mongo } from 'mongoose';
import type { AdapterPayload } from 'oidc-provider';

import { accountIdOf, CONSUME_CLAIMS_COLLECTION } from '../../oidc/mongo-adapter.js';
import { retryOnLockContention } from '../lock-contention.js';
import type { Migration } from './migration.js';

interface OidcRecord {
  _id: string;
  payload?: unknown;
  accountId?: unknown;
  clientId?: unknown;
}

const BATCH_SIZE = 500;
const PARALLEL_UPDATES = 8;

/**
 * Copies `accountId` and `clientId` out of the serialised payload of the provider's records
 * written before the adapter stored them beside it, so that revoking everything of one account
 * (revokeAccountRecords) or one client (ClientService.remove) finds them by those indexed fields
 * alone. Records written since carry both already (the adapter's upsert).
 *
 * Walks each `oidc_*` collection by `_id` in batches and sets only missing fields, so a run cut
 * short is simply run again. Each update is conditional on the payload it was computed from: a
 * record the server rewrote in the meantime carries its own fields already.
 */
export const backfillOidcOwner: Migration = {
  id: '001-backfill-oidc-owner',
  description: 'set accountId and clientId beside the payload of older oidc_* records (revocation by account or client uses only those fields)',
  async up(db, { logger, assertHeld }) {
    const names = (await db.listCollections({}, { nameOnly: true }).toArray())
      .map((c) => c.name)
      .filter((name) => name.startsWith('oidc_') && name !== CONSUME_CLAIMS_COLLECTION)
      .sort();
    for (const name of names) {
      const collection = db.collection<OidcRecord>(name);
      let after: string | undefined;
      let updated = 0;
      for (;;) {
        const filter: mongo.Filter<OidcRecord> = after === undefined ? {} : { _id: { $gt: after } };
        const batch = await retryOnLockContention(() =>
          collection.find(filter, { projection: { _id: 1, payload: 1, accountId: 1, clientId: 1 }, sort: { _id: 1 }, limit: BATCH_SIZE }).toArray(),
        );
        if (batch.length === 0) break;
        const writes = batch.flatMap((record) => {
          const set = missingOwnerFields(record);
          return set ? [{ filter: { _id: record._id, payload: record.payload }, set }] : [];
        });
        if (writes.length > 0) await assertHeld();
        // NOTE: single updates, a few at a time: FerretDB 1.24 stalled on a bulk write of a batch.
        for (let i = 0; i < writes.length; i += PARALLEL_UPDATES) {
          const results = await Promise.all(
            writes.slice(i, i + PARALLEL_UPDATES).map(({ filter, set }) => retryOnLockContention(() => collection.updateOne(filter, { $set: set }))),
          );
          updated += results.reduce((sum, r) => sum + r.modifiedCount, 0);
        }
        after = batch[batch.length - 1]?._id;
      }
      if (updated > 0) logger.info('backfilled accountId/clientId', { collection: name, records: updated });
    }
  },
};

/** The fields the adapter would have written for this record and that it lacks; undefined when none. */
function missingOwnerFields(record: OidcRecord): { accountId?: string; clientId?: string } | undefined {
  if (typeof record.payload !== 'string') return undefined;
  let payload: AdapterPayload;
  try {
    payload = JSON.parse(record.payload) as AdapterPayload;
  } catch {
    // Not written by the adapter: nothing to copy, and the sweep removes it when it expires.
    return undefined;
  }
  if (!payload || typeof payload !== 'object') return undefined;
  const set: { accountId?: string; clientId?: string } = {};
  const accountId = accountIdOf(payload);
  if (accountId && record.accountId === undefined) set.accountId = accountId;
  if (typeof payload.clientId === 'string' && payload.clientId && record.clientId === undefined) set.clientId = payload.clientId;
  return Object.keys(set).length > 0 ? set : undefined;
}
