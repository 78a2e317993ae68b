import { createHash, generateKeyPairSync } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';

import type { mongo } from 'mongoose';

import { CLIENT_TTL_MAXIMA } from '../clients/client-input.js';
import type { Config } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { isDuplicateKey } from '../db/claims.js';
import type { Logger } from '../logging/logger.js';

/**
 * Signing keys live in MongoDB (private parts sealed), so every node and every restart serves the
 * same JWKS and can verify what another node signed. One RS256 and one ES256 key are created on
 * first boot; `keys rotate` adds more (key-rotation.service.ts).
 *
 * A key's state follows from its row's times alone, never from which node asks:
 *   pending         now < activatedAt: published in the JWKS, signs nothing yet
 *   active          the newest activated key of its algorithm: signs
 *   published-only  superseded (a newer key of its algorithm activated at `supersededAt`), and
 *                   kept in the JWKS until `retireAfter` = supersededAt + the longest lifetime of
 *                   anything it signed, so every token it signed still verifies
 *   retired         `retiredAt` set (`keys retire`), or past `retireAfter`: not published
 * Because the times are known in advance, every node switches at the same moment by computing
 * the states from the rows it loaded; only a new or retired row has to reach the nodes (key-ring.ts).
 */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export const SIGNING_KEYS_COLLECTION = 'signing_keys';

export interface SigningKeyRecord {
  _id: string; // kid
  alg: SigningAlgorithm;
  /**
   * Unique while present: only one first-boot key per algorithm, even when nodes start together.
   * NOTE: leave it out (never null) on other keys: FerretDB lacks partial indexes, and its
   * sparse unique index still counts nulls.
   */
  slot?: string;
  /** Removed when the key is retired: a retired key never signs or verifies again. */
  sealedJwk?: string;
  createdAt: Date;
  /** When it entered the JWKS. Absent on first-boot keys of earlier versions: createdAt. */
  publishAt?: Date;
  activatedAt: Date;
  retiredAt: Date | null;
}

export interface PrivateJwk extends JsonWebKey {
  kid: string;
  alg: SigningAlgorithm;
  use: 'sig';
}

export type SigningKeyState = 'pending' | 'active' | 'published-only' | 'retired';

export interface SigningKeyView {
  kid: string;
  alg: SigningAlgorithm;
  state: SigningKeyState;
  createdAt: Date;
  publishAt: Date;
  activatedAt: Date;
  /** When a newer key of its algorithm activates (or activated); null while none is planned. */
  supersededAt: Date | null;
  /** When it may leave the JWKS: supersededAt + the retention; null while no successor is planned. */
  retireAfter: Date | null;
  /** Set by `keys retire`. */
  retiredAt: Date | null;
}

/** A published key: what the JWKS lists, and what the provider's keystore holds (signers first). */
export interface PublishedKey {
  view: SigningKeyView;
  record: SigningKeyRecord;
}

const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth']);

/** The public half of a private JWK, as the JWKS publishes it. */
export function publicJwk(jwk: PrivateJwk): Omit<PrivateJwk, 'd' | 'p' | 'q' | 'dp' | 'dq' | 'qi'> {
  return Object.fromEntries(Object.entries(jwk).filter(([name]) => !PRIVATE_MEMBERS.has(name))) as PrivateJwk;
}

/**
 * Beyond the token lifetimes: nodes follow a key change within seconds (key-ring.ts), so one may
 * still sign with a superseded key briefly; relying parties also allow some clock skew.
 */
export const RETENTION_MARGIN_SECONDS = 10 * 60;

/**
 * How long a superseded key stays published: the longest lifetime of anything it may have signed.
 * ID tokens (the default TTL, or a client's own `id_token_ttl`, up to its maximum) and, should JWT
 * access tokens ever be issued, access tokens. Nothing else we sign expires later: userinfo and
 * introspection responses are not signed, back-channel logout is off.
 */
export function signingKeyRetentionSeconds(ttl: Config['ttl']): number {
  return Math.max(ttl.idToken, CLIENT_TTL_MAXIMA.idToken, ttl.accessToken, CLIENT_TTL_MAXIMA.accessToken) + RETENTION_MARGIN_SECONDS;
}

/** Chain order of one algorithm's keys: by activation, then creation, then kid (the same on every node). */
function byActivation(a: SigningKeyRecord, b: SigningKeyRecord): number {
  return (
    a.activatedAt.getTime() - b.activatedAt.getTime() ||
    a.createdAt.getTime() - b.createdAt.getTime() ||
    (a._id < b._id ? -1 : a._id > b._id ? 1 : 0)
  );
}

/** Every row's state at `now`; `retentionSeconds` from signingKeyRetentionSeconds. Order: by algorithm, then activation. */
export function describeKeys(rows: readonly SigningKeyRecord[], now: Date, retentionSeconds: number): SigningKeyView[] {
  const at = now.getTime();
  const views: SigningKeyView[] = [];
  for (const alg of SIGNING_ALGORITHMS) {
    const ofAlg = rows.filter((row) => row.alg === alg).sort(byActivation);
    // A retired key supersedes nothing (a retired pending key was a cancelled rotation).
    const chain = ofAlg.filter((row) => row.retiredAt === null && row.sealedJwk !== undefined);
    for (const row of ofAlg) {
      const next = chain[chain.indexOf(row) + 1];
      const inChain = chain.includes(row);
      const supersededAt = inChain && next ? next.activatedAt : null;
      // An infinite retention (a caller that does not know the lifetimes) keeps superseded keys published.
      const retireAfter = supersededAt && Number.isFinite(retentionSeconds) ? new Date(supersededAt.getTime() + retentionSeconds * 1000) : null;
      let state: SigningKeyState;
      if (!inChain) state = 'retired';
      else if (at < row.activatedAt.getTime()) state = 'pending';
      else if (!supersededAt || at < supersededAt.getTime()) state = 'active';
      else if (!retireAfter || at < retireAfter.getTime()) state = 'published-only';
      else state = 'retired';
      views.push({
        kid: row._id,
        alg,
        state,
        createdAt: row.createdAt,
        publishAt: row.publishAt ?? row.createdAt,
        activatedAt: row.activatedAt,
        supersededAt,
        retireAfter,
        retiredAt: row.retiredAt,
      });
    }
  }
  return views;
}

const PUBLISH_ORDER: Record<SigningKeyState, number> = { active: 0, pending: 1, 'published-only': 2, retired: 3 };

/**
 * The keys to publish at `now`, in keystore order: per algorithm (RS256 first) the active key
 * first, because oidc-provider signs with the first key in its keystore that fits the algorithm;
 * then pending keys, then superseded ones (newest first), which only verify.
 */
export function publishedKeys(rows: readonly SigningKeyRecord[], now: Date, retentionSeconds: number): PublishedKey[] {
  const byKid = new Map(rows.map((row) => [row._id, row]));
  return describeKeys(rows, now, retentionSeconds)
    .filter((view) => view.state !== 'retired')
    .map((view, index) => ({ view, index }))
    .sort(
      (a, b) =>
        SIGNING_ALGORITHMS.indexOf(a.view.alg) - SIGNING_ALGORITHMS.indexOf(b.view.alg) ||
        PUBLISH_ORDER[a.view.state] - PUBLISH_ORDER[b.view.state] ||
        b.index - a.index,
    )
    .map(({ view }) => ({ view, record: byKid.get(view.kid) as SigningKeyRecord }));
}

export function generateSigningKey(alg: SigningAlgorithm): PrivateJwk {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  // RFC 7638 thumbprint over the public members as the kid: stable and meaningless.
  const members =
    alg === 'RS256' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  const kid = createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return { ...jwk, kid, alg, use: 'sig' };
}

/** The context a key is sealed under: a sealed key does not open as another kid's. */
export const sealingContext = (kid: string) => `signing_key:${kid}`;

export function openSigningKey(secretBox: SecretBox, row: SigningKeyRecord): PrivateJwk {
  if (row.sealedJwk === undefined) throw new Error(`signing key ${row._id} is retired`);
  return JSON.parse(secretBox.open(row.sealedJwk, sealingContext(row._id))) as PrivateJwk;
}

export interface SigningKeysDeps {
  db: mongo.Db;
  secretBox: SecretBox;
  logger: Logger;
}

export function signingKeysCollection(db: mongo.Db): mongo.Collection<SigningKeyRecord> {
  return db.collection<SigningKeyRecord>(SIGNING_KEYS_COLLECTION);
}

export async function ensureSigningKeyIndexes(db: mongo.Db): Promise<void> {
  const collection = signingKeysCollection(db);
  await collection.createIndex({ slot: 1 }, { unique: true, partialFilterExpression: { slot: { $type: 'string' } } }).catch(
    // NOTE: FerretDB 1.x lacks partial indexes; a sparse unique index does the same job there.
    () => collection.createIndex({ slot: 1 }, { unique: true, sparse: true }),
  );
}

/** First boot: one key per algorithm that has none in use, created once even when nodes start together. */
export async function ensureInitialSigningKeys({ db, secretBox, logger }: SigningKeysDeps, now: Date = new Date()): Promise<void> {
  const collection = signingKeysCollection(db);
  for (const alg of SIGNING_ALGORITHMS) {
    const existing = await collection.findOne({ alg, retiredAt: null });
    if (existing) continue;
    const jwk = generateSigningKey(alg);
    try {
      await collection.insertOne({
        _id: jwk.kid,
        alg,
        slot: `initial:${alg}`,
        sealedJwk: secretBox.seal(JSON.stringify(jwk), sealingContext(jwk.kid)),
        createdAt: now,
        publishAt: now,
        activatedAt: now,
        retiredAt: null,
      });
      logger.info('created signing key', { kid: jwk.kid, alg });
    } catch (err) {
      // Another node created it at the same moment: use theirs.
      if (!isDuplicateKey(err)) throw err;
    }
  }
}

/** The rows that may still be published (not retired by hand). */
export function loadSigningKeyRows(db: mongo.Db): Promise<SigningKeyRecord[]> {
  return signingKeysCollection(db).find({ retiredAt: null }).toArray();
}

/**
 * Creates the first-boot keys if needed and returns the keys published now, in keystore order
 * (the active key of each algorithm first, RS256 before ES256).
 */
export async function loadOrCreateSigningKeys(
  deps: SigningKeysDeps,
  { now = new Date(), retentionSeconds = Number.POSITIVE_INFINITY }: { now?: Date; retentionSeconds?: number } = {},
): Promise<PrivateJwk[]> {
  await ensureSigningKeyIndexes(deps.db);
  await ensureInitialSigningKeys(deps, now);
  const rows = await loadSigningKeyRows(deps.db);
  return publishedKeys(rows, now, retentionSeconds).map(({ record }) => openSigningKey(deps.secretBox, record));
}
