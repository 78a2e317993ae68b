import { createHash, generateKeyPairSync } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { SecretBox } from '../crypto/secret-box.js';
import { isDuplicateKey } from '../db/claims.js';
import type { Logger } from '../logging/logger.js';

/**
 * Signing keys are created on first boot and kept in MongoDB (private parts sealed), so every
 * node and every restart serves the same JWKS and can verify what another node signed.
 * Rows keep createdAt / activatedAt / retiredAt so a later rotation can retire a key while
 * still publishing it until the tokens it signed have expired.
 */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

interface SigningKeyRecord {
  _id: string; // kid
  alg: SigningAlgorithm;
  /**
   * Unique while present: only one first-boot key per algorithm, even when nodes start together.
   * NOTE: leave it out (never null) on other keys: FerretDB lacks partial indexes, and its
   * sparse unique index still counts nulls.
   */
  slot?: string;
  sealedJwk: string;
  createdAt: Date;
  activatedAt: Date;
  retiredAt: Date | null;
}

export interface PrivateJwk extends JsonWebKey {
  kid: string;
  alg: SigningAlgorithm;
  use: 'sig';
}

function generate(alg: SigningAlgorithm): PrivateJwk {
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

export interface SigningKeysDeps {
  db: mongo.Db;
  secretBox: SecretBox;
  logger: Logger;
}

export async function loadOrCreateSigningKeys({ db, secretBox, logger }: SigningKeysDeps): Promise<PrivateJwk[]> {
  const collection = db.collection<SigningKeyRecord>('signing_keys');
  await collection.createIndex({ slot: 1 }, { unique: true, partialFilterExpression: { slot: { $type: 'string' } } }).catch(
    // NOTE: FerretDB 1.x lacks partial indexes; a sparse unique index does the same job there.
    () => collection.createIndex({ slot: 1 }, { unique: true, sparse: true }),
  );

  for (const alg of SIGNING_ALGORITHMS) {
    const existing = await collection.findOne({ alg, retiredAt: null });
    if (existing) continue;
    const jwk = generate(alg);
    const now = new Date();
    try {
      await collection.insertOne({
        _id: jwk.kid,
        alg,
        slot: `initial:${alg}`,
        sealedJwk: secretBox.seal(JSON.stringify(jwk), `signing_key:${jwk.kid}`),
        createdAt: now,
        activatedAt: now,
        retiredAt: null,
      });
      logger.info('created signing key', { kid: jwk.kid, alg });
    } catch (err) {
      // Another node created it at the same moment: use theirs.
      if (!isDuplicateKey(err)) throw err;
    }
  }

  const rows = await collection.find({ retiredAt: null }).sort({ activatedAt: -1 }).toArray();
  // Newest first per algorithm: the provider signs with the first key that fits.
  rows.sort((a, b) => SIGNING_ALGORITHMS.indexOf(a.alg) - SIGNING_ALGORITHMS.indexOf(b.alg));
  return rows.map((row) => JSON.parse(secretBox.open(row.sealedJwk, `signing_key:${row._id}`)) as PrivateJwk);
}
