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

/** A claim on attempt n of a record's delivery: `_id` is `<recordId>:<n>`, held until `leaseUntil`. */
export interface AttemptClaimRecord {
  _id: string;
  /** The worker that took it, for whoever investigates a stuck record. */
  node: string;
  at: Date;
  leaseUntil: Date;
}

/** The fields every record a delivery worker takes attempts on has. */
export interface AttemptRecord {
  _id: string;
  state: string;
  /** Attempts started so far: the claims `<id>:0` … `<id>:<attempts - 1>` are used up. */
  attempts: number;
  /** When a worker may take the next attempt (during an attempt: when its lease ends). */
  nextAttemptAt: Date;
}

export interface AttemptClaims<R extends AttemptRecord> {
  /** The claim on an attempt: the number won, or undefined when another node holds a live one. */
  claim(id: string, firstAttempt: number): Promise<{ attempt: number; leaseUntil: Date } | undefined>;
  /**
   * The worker's path for one due record: claims its next attempt, then re-reads it. The record
   * and the attempt won, or undefined when another node has it or it moved on.
   */
  take(seen: Pick<R, '_id' | 'attempts'>): Promise<{ record: R; attempt: number } | undefined>;
}

/**
 * Exactly one node makes each attempt of a queued record's delivery (mail, back-channel logout).
 * Attempt n of record r belongs to whoever inserts the claim `{ _id: "r:n" }` first; the winner
 * re-reads the record and goes on only if it is still queued at or before n. Only the winner
 * writes the attempt's outcome, which moves `attempts` past n, so a node that read the record
 * before that (a stale read) fails the re-read. The claim holds a lease: a node that dies between
 * its claim and the outcome leaves a claim nobody renews, and once the lease has passed the next
 * worker that finds the record due takes attempt n+1.
 */
export function createAttemptClaims<R extends AttemptRecord, C extends AttemptClaimRecord>(deps: {
  records: mongo.Collection<R>;
  claims: mongo.Collection<C>;
  /** Names this worker in its claims. */
  node: string;
  leaseMs: number;
  /** Epoch milliseconds. */
  now: () => number;
  /** The claim's own fields besides the attempt's (the record's id, under the collection's name for it). */
  owner: (id: string) => Omit<C, keyof AttemptClaimRecord>;
}): AttemptClaims<R> {
  const { records, claims, node, leaseMs, now, owner } = deps;

  const claim = async (id: string, firstAttempt: number): Promise<{ attempt: number; leaseUntil: Date } | undefined> => {
    let attempt = firstAttempt;
    // A held claim whose lease has passed belongs to a node that died mid-attempt: take the next
    // number. Bounded: a few dead nodes in a row is already more than a sick cluster produces.
    for (let hop = 0; hop < 4; hop += 1) {
      const at = now();
      const leaseUntil = new Date(at + leaseMs);
      // NOTE: a cast: TypeScript cannot see that the base fields and owner()'s make up C.
      const doc = { _id: `${id}:${attempt}`, ...owner(id), node, at: new Date(at), leaseUntil } as unknown as mongo.OptionalUnlessRequiredId<C>;
      if (await insertClaim(claims, doc)) return { attempt, leaseUntil };
      const held = await claims.findOne({ _id: `${id}:${attempt}` } as mongo.Filter<C>, { projection: { leaseUntil: 1 } });
      if (held && held.leaseUntil.getTime() > now()) return undefined;
      attempt += 1;
    }
    return undefined;
  };

  return {
    claim,
    async take(seen) {
      const won = await claim(seen._id, seen.attempts);
      if (!won) return undefined;
      // The re-read after the claim: still queued, and no later attempt recorded. It also moves
      // nextAttemptAt to the lease's end, so other workers stop finding it due.
      // NOTE: casts: the filter and update name only fields AttemptRecord guarantees R has.
      const record = await records.findOneAndUpdate(
        { _id: seen._id, state: 'queued', attempts: { $lte: won.attempt } } as mongo.Filter<R>,
        { $set: { nextAttemptAt: won.leaseUntil } } as mongo.UpdateFilter<R>,
        { returnDocument: 'before' },
      );
      if (!record) return undefined;
      return { record: record as R, attempt: won.attempt };
    },
  };
}
