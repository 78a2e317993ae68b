import type { mongo } from 'mongoose';

/**
 * The `expiresAt` index of a collection whose documents expire: a TTL index where the server has
 * them, so that it removes them itself, and a plain one for the periodic sweep where it does not
 * (FerretDB 1.x). Either way expired documents must not be read as live: queries still compare
 * `expiresAt` with now.
 */
export async function ensureExpiryIndex(collection: Pick<mongo.Collection, 'createIndex'>): Promise<void> {
  try {
    await collection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'expiresAt_ttl' });
  } catch {
    await collection.createIndex({ expiresAt: 1 }, { name: 'expiresAt_1' });
  }
}
