import type { mongo } from 'mongoose';

/**
 * "Exactly once" on every server we support. FerretDB 1.x applies conditional updates and
 * `$inc` as a separate read and write, so two racing "if still unused" updates can both win;
 * inserting a document under a unique `_id` is atomic everywhere, so whoever inserts first
 * holds the claim and everyone else gets a duplicate key error (11000).
 */
export function isDuplicateKey(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 11000;
}

/** Inserts the claim; true when this caller got it, false when someone else already holds it. */
export async function insertClaim<T extends { _id: string }>(collection: mongo.Collection<T>, doc: mongo.OptionalUnlessRequiredId<T>): Promise<boolean> {
  try {
    await collection.insertOne(doc);
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}
