import { createHmac, hkdfSync } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { Clock } from '../core/clock.js';
import { isDuplicateKey } from '../db/claims.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';

/**
 * The browsers each account has signed in from, for the "new sign-in" notice (NOTIFY_NEW_SIGN_IN).
 * A browser is a random id in a long-lived signed cookie (src/sign-in/known-browser.ts); this
 * store keeps only keyed hashes: `_id` = HMAC(account id, browser id) and `account` =
 * HMAC(account id), so the collection tells no one which account used which browser, or who has
 * an account at all. The key is derived (HKDF) from the first ENCRYPTION_KEYS entry; a new first
 * entry forgets every browser, and the next sign-in of each account counts as its first (no mail).
 */
export const KNOWN_BROWSERS_COLLECTION = 'known_browsers';

/** A browser unseen this long is forgotten (and its cookie lasts as long). */
export const KNOWN_BROWSER_TTL_MS = 400 * 86_400_000;

interface KnownBrowserRecord {
  _id: string;
  account: string;
  seenAt: Date;
  expiresAt: Date;
}

/**
 * `known`: this browser signed in to this account before. `new`: it had not, but other browsers
 * had (the notice goes out). `first`: no browser is known for the account (its first sign-in, or
 * the first since the feature was turned on): nothing to compare with, so no notice.
 */
export type BrowserVerdict = 'known' | 'new' | 'first';

export interface KnownBrowserService {
  /** Records a successful sign-in of `accountId` from `browserId` (one write; one read more only for a browser not seen before). */
  signedIn(accountId: string, browserId: string): Promise<BrowserVerdict>;
  ensureIndexes(): Promise<void>;
  sweep(): Promise<number>;
}

export function createKnownBrowserService({ db, keys, clock }: { db: mongo.Db; keys: readonly { id: string; key: Buffer }[]; clock: Clock }): KnownBrowserService {
  const [current] = keys;
  if (!current) throw new Error('no encryption key');
  const key = Buffer.from(hkdfSync('sha256', current.key, Buffer.alloc(0), 'oidc-server/known-browser/v1', 32));
  const mac = (value: string) => createHmac('sha256', key).update(value).digest('base64url');
  const browsers = db.collection<KnownBrowserRecord>(KNOWN_BROWSERS_COLLECTION);

  return {
    async signedIn(accountId, browserId) {
      const id = mac(`browser:${accountId}:${browserId}`);
      const account = mac(`account:${accountId}`);
      const now = clock.nowMs();
      let inserted: boolean;
      try {
        // One command for the usual case (a browser seen before): the upsert also moves its expiry.
        const result = await browsers.updateOne(
          { _id: id },
          { $set: { account, seenAt: new Date(now), expiresAt: new Date(now + KNOWN_BROWSER_TTL_MS) } },
          { upsert: true },
        );
        inserted = result.upsertedCount > 0;
      } catch (err) {
        // Two sign-ins of one browser at once: the other inserted it.
        if (!isDuplicateKey(err)) throw err;
        inserted = false;
      }
      if (!inserted) return 'known';
      const other = await browsers.findOne({ account, _id: { $ne: id }, expiresAt: { $gt: new Date(now) } }, { projection: { _id: 1 } });
      return other ? 'new' : 'first';
    },
    async ensureIndexes() {
      await browsers.createIndex({ account: 1 });
      await ensureExpiryIndex(browsers);
    },
    async sweep() {
      const { deletedCount } = await browsers.deleteMany({ expiresAt: { $lte: clock.now() } });
      return deletedCount;
    },
  };
}
