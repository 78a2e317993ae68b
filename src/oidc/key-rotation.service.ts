import { randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { AuditActor, AuditService } from '../audit/audit.service.js';
import { CACHE_STAMPS_COLLECTION } from '../clients/client-cache.js';
import type { Clock } from '../core/clock.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { AppError } from '../http/app-error.js';
import type { Logger } from '../logging/logger.js';
import type { PublishedKey, SigningAlgorithm, SigningKeyRecord, SigningKeyView } from './keys.js';
import {
  describeKeys,
  ensureInitialSigningKeys,
  ensureSigningKeyIndexes,
  generateSigningKey,
  loadSigningKeyRows,
  publishedKeys,
  sealingContext,
  signingKeysCollection,
} from './keys.js';

/**
 * Rotation and retirement of the signing keys (the `keys` commands), by time alone:
 *  - `rotate` adds a key with publishAt = now and activatedAt = now + KEY_PREPUBLISH_SECONDS. It is
 *    in every node's JWKS at once (relying parties that cache the JWKS fetch it before it signs)
 *    and signs from activatedAt on, when the key it supersedes starts its retention period;
 *  - `retire` ends a key by hand; a key is also dropped from the JWKS on its own at retireAfter.
 * Neither writes anything at activation or expiry: each node computes the states from the rows
 * (keys.ts). A change of rows sets the `signing_keys` stamp, which the nodes poll (key-ring.ts).
 */

/** The `cache_stamps` document every change to the rows sets. */
export const SIGNING_KEYS_STAMP = 'signing_keys';

/**
 * A pending key this close to its activation counts as needed: the nodes might not all see its
 * retirement before some of them start signing with it.
 */
export const PENDING_RETIRE_MARGIN_MS = 60_000;

export interface SigningKeyServiceDeps {
  db: mongo.Db;
  secretBox: SecretBox;
  logger: Logger;
  clock: Clock;
  audit?: AuditService | undefined;
  prepublishSeconds: number;
  /** signingKeyRetentionSeconds(config.ttl). */
  retentionSeconds: number;
}

export interface RetireResult {
  view: SigningKeyView;
  /** Retired with --force although still needed. */
  forced: boolean;
}

export interface SigningKeyService {
  readonly prepublishSeconds: number;
  readonly retentionSeconds: number;
  ensureIndexes(): Promise<void>;
  /** First boot: one key per algorithm (the server, before it builds the provider). */
  ensureInitialKeys(): Promise<void>;
  /** Every key, retired ones too, by algorithm then activation. */
  list(): Promise<SigningKeyView[]>;
  /** The rows that may still be published, and the keys published at the clock's now. */
  published(rows?: SigningKeyRecord[]): Promise<{ rows: SigningKeyRecord[]; keys: PublishedKey[] }>;
  /** A new key per algorithm, published now, signing after the pre-publication time. */
  rotate(algs: readonly SigningAlgorithm[], actor: AuditActor): Promise<SigningKeyView[]>;
  /** Ends a key: refused for the active key, and for a key still needed unless `force`. */
  retire(kid: string, options: { force: boolean; actor: AuditActor }): Promise<RetireResult>;
  /** Reads the stamp (the nodes' poll). */
  readStamp(): Promise<string | null>;
}

export function createSigningKeyService(deps: SigningKeyServiceDeps): SigningKeyService {
  const { db, secretBox, logger, clock, audit, prepublishSeconds, retentionSeconds } = deps;
  const collection = signingKeysCollection(db);
  const stamps = () => db.collection<{ _id: string; stamp: string; at: Date }>(CACHE_STAMPS_COLLECTION);

  /** AFTER the write itself, as the client cache does: a poll that sees the stamp sees the rows. */
  const changed = async () => {
    await stamps()
      .updateOne({ _id: SIGNING_KEYS_STAMP }, { $set: { stamp: randomBytes(12).toString('base64url'), at: clock.now() } }, { upsert: true })
      .catch((err: unknown) => {
        // The nodes also reload the rows every minute: a lost stamp delays, never loses, the change.
        logger.warn('signing key stamp not written', { reason: (err as Error).message });
      });
  };

  const allRows = () => collection.find({}, { projection: { sealedJwk: 0 } }).toArray();
  // describeKeys reads `sealedJwk` only to tell retired rows; the projection leaves it out, so mark the live ones.
  const withPresence = (rows: SigningKeyRecord[]) => rows.map((row) => (row.retiredAt === null ? { ...row, sealedJwk: '' } : row));

  const list = async () => describeKeys(withPresence(await allRows()), clock.now(), retentionSeconds);

  return {
    prepublishSeconds,
    retentionSeconds,
    ensureIndexes: () => ensureSigningKeyIndexes(db),
    ensureInitialKeys: () => ensureInitialSigningKeys({ db, secretBox, logger }, clock.now()),
    list,

    async published(rows) {
      const loaded = rows ?? (await loadSigningKeyRows(db));
      return { rows: loaded, keys: publishedKeys(loaded, clock.now(), retentionSeconds) };
    },

    async rotate(algs, actor) {
      const now = clock.now();
      const views = await list();
      for (const alg of algs) {
        // A pending key with no active one before it would sign at once (the provider takes the first key of the algorithm).
        if (!views.some((view) => view.alg === alg && view.state === 'active')) throw new AppError('signing_key.no_active_key', { alg });
        const pending = views.find((view) => view.alg === alg && view.state === 'pending');
        if (pending) {
          throw new AppError('signing_key.rotation_pending', { alg, kid: pending.kid, activatesAt: pending.activatedAt.toISOString() });
        }
      }
      const activatedAt = new Date(now.getTime() + prepublishSeconds * 1000);
      const created: string[] = [];
      for (const alg of algs) {
        const jwk = generateSigningKey(alg);
        await collection.insertOne({
          _id: jwk.kid,
          alg,
          sealedJwk: secretBox.seal(JSON.stringify(jwk), sealingContext(jwk.kid)),
          createdAt: now,
          publishAt: now,
          activatedAt,
          retiredAt: null,
        });
        created.push(jwk.kid);
        logger.info('signing key rotated in', { kid: jwk.kid, alg, activatedAt: activatedAt.toISOString() });
      }
      await changed();
      const after = await list();
      for (const kid of created) {
        const view = after.find((v) => v.kid === kid);
        if (!view) continue;
        // The key it supersedes: the one of its algorithm that was active before the rotation.
        const activeBefore = views.find((v) => v.alg === view.alg && v.state === 'active');
        const superseded = after.find((v) => v.kid === activeBefore?.kid);
        await audit?.record({
          action: 'signing_key.rotated',
          outcome: 'success',
          actor,
          target: { type: 'signing_key', id: kid, label: view.alg },
          details: {
            alg: view.alg,
            activatedAt: view.activatedAt.toISOString(),
            ...(superseded ? { supersedes: superseded.kid, supersededRetireAfter: superseded.retireAfter?.toISOString() ?? '' } : {}),
          },
        });
      }
      return after.filter((view) => created.includes(view.kid));
    },

    async retire(kid, { force, actor }) {
      const now = clock.now();
      const views = await list();
      const view = views.find((v) => v.kid === kid);
      if (!view) throw new AppError('signing_key.not_found', { kid });
      if (view.retiredAt !== null) throw new AppError('signing_key.already_retired', { kid });
      if (view.state === 'active') throw new AppError('signing_key.signing', { kid, alg: view.alg });
      let neededWhy: string | undefined;
      if (view.state === 'published-only' && view.retireAfter) {
        neededWhy = `tokens it signed may be live until ${view.retireAfter.toISOString()}`;
      } else if (view.state === 'pending' && view.activatedAt.getTime() - now.getTime() < PENDING_RETIRE_MARGIN_MS) {
        neededWhy = `it starts signing at ${view.activatedAt.toISOString()}, too soon for every node to drop it first`;
      }
      if (neededWhy && !force) {
        await audit?.record({
          action: 'signing_key.retired',
          outcome: 'failure',
          actor,
          target: { type: 'signing_key', id: kid, label: view.alg },
          reason: 'still_needed',
        });
        throw new AppError('signing_key.still_needed', { kid, why: neededWhy });
      }
      // The private key goes with it: a retired key never signs or verifies again.
      await collection.updateOne({ _id: kid }, { $set: { retiredAt: now }, $unset: { sealedJwk: '' } });
      await changed();
      const forced = neededWhy !== undefined;
      logger.info('signing key retired', { kid, alg: view.alg, previousState: view.state, forced });
      await audit?.record({
        action: 'signing_key.retired',
        outcome: 'success',
        actor,
        target: { type: 'signing_key', id: kid, label: view.alg },
        details: { previousState: view.state, forced, ...(view.retireAfter ? { retireAfter: view.retireAfter.toISOString() } : {}) },
      });
      const after = (await list()).find((v) => v.kid === kid) ?? { ...view, state: 'retired' as const, retiredAt: now };
      return { view: after, forced };
    },

    async readStamp() {
      const doc = await stamps().findOne({ _id: SIGNING_KEYS_STAMP }, { projection: { stamp: 1 } });
      return doc?.stamp ?? null;
    },
  };
}
