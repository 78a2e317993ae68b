import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';
import { generateSecret, generateURI, verify as verifyOtp } from 'otplib';
import QRCode from 'qrcode';
import { z } from 'zod';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { SecretBoxError } from '../crypto/secret-box.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { insertClaim } from '../db/claims.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';
import { AppError } from '../http/app-error.js';
import type { AccountModel } from './account.model.js';

/**
 * Authenticator apps (TOTP, RFC 6238) and recovery codes.
 *
 * The secret is sealed with the secret box under the context `totp:<accountId>`, so a sealed
 * value copied onto another account does not open.
 *
 * Enrolment stores nothing until activation: showing the enrolment page (a GET) must not write.
 * The page gets a fresh secret sealed with its expiry under `totp-enrolment:<accountId>` and
 * carries it in its form; activation opens it (so it works only for that account and only until
 * it expires), checks the code against it and only then stores the secret on the account.
 *
 * NOTE: FerretDB 1.x has no transactions and applies a conditional update (or `$inc`, `$max`,
 * `$pull`) as a separate read and write, so concurrent requests can all "win" such an update.
 * Every decision that must be made exactly once (this code in this time step, this recovery
 * code, this activation) is therefore made by inserting a claim under a unique `_id`: only one
 * insert of an `_id` succeeds, on every server. The account document is written after the
 * claim and is never the arbiter.
 */

export interface TotpEnrolment {
  /** Base32, for people who type it in instead of scanning the QR code. */
  secret: string;
  otpauthUri: string;
  /** `data:image/png;base64,…` */
  qrCodeDataUrl: string;
  /** The secret sealed to the account with its expiry: the enrolment form carries it to `activate`. */
  sealed: string;
  expiresAt: Date;
}

/** Why an activation was refused. `expired`: the sealed enrolment is missing, not this account's, tampered with or too old. */
export type TotpActivateRefusal = 'invalid' | 'expired' | 'already_enrolled';

export type TotpVerifyResult = { ok: true } | { ok: false; reason: 'invalid' | 'replayed' | 'not_enrolled' };

export type RecoveryVerifyResult = { ok: true; remaining: number } | { ok: false; reason: 'invalid' | 'not_enrolled' };

export interface TotpService {
  /**
   * A new secret for the enrolment page, sealed for the form; writes nothing. `continueFrom`: a
   * sealed enrolment from the form, reused when it still opens for this account (a page
   * re-rendered after a wrong code shows the same QR code); otherwise a new secret is made.
   * Throws `mfa.already_enrolled` (409) when an authenticator is active: remove it first.
   */
  beginEnrolment(account: { id: string; email: string }, options?: { continueFrom?: string | undefined }): Promise<TotpEnrolment>;
  /**
   * Activates the secret in `enrolment` (the sealed value from `beginEnrolment`) if `code` is
   * valid for it; returns 10 fresh recovery codes (shown once; stored hashed).
   */
  activate(
    accountId: string,
    code: string,
    enrolment: string,
  ): Promise<{ ok: true; recoveryCodes: string[] } | { ok: false; reason: TotpActivateRefusal }>;
  verify(accountId: string, code: string): Promise<TotpVerifyResult>;
  verifyRecoveryCode(accountId: string, code: string): Promise<RecoveryVerifyResult>;
  /** Replaces every recovery code (the old ones stop working). Throws `mfa.not_enrolled` (409) without an authenticator. */
  regenerateRecoveryCodes(accountId: string): Promise<string[]>;
  status(accountId: string): Promise<{ enabled: boolean; enabledAt?: Date; recoveryCodesLeft: number }>;
  /** Removes the authenticator and recovery codes (the caller has checked password or a current code). */
  remove(accountId: string): Promise<void>;
  ensureIndexes(): Promise<void>;
  /**
   * Removes expired time-step claims (servers without TTL indexes) and recovery-code claims
   * that are no longer needed (on every server: these have no expiry). Returns how many went.
   */
  sweep(now?: Date): Promise<number>;
}

export interface TotpServiceDeps {
  Account: AccountModel;
  db: mongo.Db;
  secretBox: SecretBox;
  /**
   * ENCRYPTION_KEYS (first = current): recovery codes are hashed with a key derived from the
   * current one; the others keep verifying codes hashed before a rotation.
   */
  keys: readonly { id: string; key: Buffer }[];
  /** Product name shown in the authenticator app. */
  issuer: string;
  clock?: Clock;
}

/**
 * `{ _id, accountId, expiresAt }` with `_id` one of `<accountId>:<authenticator>:<timeStep>` (a used
 * code), `<accountId>:enrolment:<digest>` (an enrolment page activated once) or
 * `<accountId>:activating` (the short lock around an activation).
 */
export const TOTP_USED_STEPS_COLLECTION = 'totp_used_steps';
/** `{ _id: "<accountId>:<stored hash>", accountId, hash: <stored hash>, usedAt }` */
export const RECOVERY_CODE_USES_COLLECTION = 'recovery_code_uses';

export const RECOVERY_CODE_COUNT = 10;

/** RFC 6238 §5.2: accept one step either side for clock drift and typing time, no more. */
const STEP_SECONDS = 30;
const EPOCH_TOLERANCE_SECONDS = STEP_SECONDS;

/**
 * How long a used step stays claimed. Longer than the window a code is valid in (three steps,
 * 90 s) plus clock differences between nodes; after that the code is refused as out of window.
 */
const STEP_CLAIM_LIFETIME_MS = 5 * 60 * 1000;

/**
 * A recovery-code claim is kept until the sweep has seen the code gone from the account, and at
 * least this long, so a `$pull` that a concurrent write undid (FerretDB, see above) cannot bring
 * the code back: the claim, not the array, says the code was used.
 */
const RECOVERY_CLAIM_SETTLE_MS = 24 * 60 * 60 * 1000;
const SWEEP_BATCH = 1000;

/** How long an enrolment page can be used: scanning and typing a code takes a minute or two. */
export const ENROLMENT_LIFETIME_MS = 30 * 60 * 1000;
/** Longer than any activation takes; a lock left by a crashed process expires after this. */
const ACTIVATION_LOCK_MS = 60 * 1000;

/**
 * Crockford's base32 alphabet, lower-cased: no i, l, o or u, so nothing reads as 1 or 0 by
 * mistake, and input is decoded the Crockford way (o → 0, i and l → 1).
 */
const RECOVERY_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const RECOVERY_CODE_PATTERN = /^[0-9a-hjkmnp-tv-z]{10}$/;

/**
 * A used time step is claimed per authenticator, not per account: a code the person's old app
 * used in step S says nothing about the code a newly enrolled app shows for S. The sealed secret
 * names the authenticator; it is written once at activation and never sealed again (NOTE: a
 * future re-seal under a new key must carry this name over, or the current step's code could
 * be used once more).
 */
function stepClaimId(accountId: string, secretSealed: string, step: number): string {
  const authenticator = createHash('sha256').update(secretSealed).digest('base64url').slice(0, 16);
  return `${accountId}:${authenticator}:${step}`;
}

interface StepClaim {
  _id: string;
  accountId: string;
  expiresAt: Date;
}

interface RecoveryClaim {
  _id: string;
  accountId: string;
  hash: string;
  usedAt: Date;
}

/** Six ASCII digits, spaces anywhere ignored ("123 456"); anything else is undefined. */
export function normaliseTotpCode(code: unknown): string | undefined {
  if (typeof code !== 'string' || code.length > 32) return undefined;
  const digits = code.replace(/\s+/g, '');
  // NOTE: [0-9], not \p{Nd}: otplib compares strings, so "١٢٣٤٥٦" would only ever fail later.
  return /^[0-9]{6}$/.test(digits) ? digits : undefined;
}

/** The canonical ten characters of a recovery code, whatever case, spaces and dashes it came with. */
export function normaliseRecoveryCode(code: unknown): string | undefined {
  if (typeof code !== 'string' || code.length > 64) return undefined;
  const canonical = code
    .toLowerCase()
    .replace(/[\s-]+/g, '')
    .replace(/o/g, '0')
    .replace(/[il]/g, '1');
  return RECOVERY_CODE_PATTERN.test(canonical) ? canonical : undefined;
}

/**
 * How recovery codes are stored: `h1.<keyId>.<HMAC-SHA256(code)>` (base64url), keyed with a key
 * derived (HKDF-SHA256, RFC 5869, with its own label) from an ENCRYPTION_KEYS entry, never the
 * raw key, which also seals secrets. A code carries 50 random bits, so no slow hash is needed;
 * the key makes a copied database useless for testing guesses offline, and the key id beside
 * each hash lets codes made before a key rotation verify as long as their key is configured.
 * Hashes stored by older versions are bare SHA-256 hex; they keep working until used or
 * replaced (regenerating codes writes keyed hashes only).
 */
export interface RecoveryCodeHasher {
  /** The stored form of a canonical code, under the current key. */
  hash(canonical: string): string;
  /** The entry of `stored` that is this code's hash (under any configured key, or a legacy one). */
  find(canonical: string, stored: readonly string[]): string | undefined;
}

/** HKDF `info`: a key derived for this use only. NOTE: changing it invalidates every stored recovery code. */
const RECOVERY_HASH_KEY_LABEL = 'oidc-server/recovery-code-hmac/v1';
const LEGACY_RECOVERY_HASH = /^[0-9a-f]{64}$/;

export function createRecoveryCodeHasher(keys: readonly { id: string; key: Buffer }[]): RecoveryCodeHasher {
  const [current] = keys;
  if (!current) throw new Error('no encryption key configured');
  // RFC 5869 §3.1: the salt is optional; the input keys are already uniformly random.
  const derived = new Map(keys.map(({ id, key }) => [id, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), RECOVERY_HASH_KEY_LABEL, 32))]));
  const mac = (keyId: string, canonical: string) => {
    const key = derived.get(keyId);
    return key ? `h1.${keyId}.${createHmac('sha256', key).update(canonical, 'utf8').digest('base64url')}` : undefined;
  };
  return {
    hash: (canonical) => mac(current.id, canonical)!,
    find(canonical, stored) {
      // One MAC per key id present. The comparison runs on MACs of the input under a key the
      // caller does not know, so its timing tells nothing useful about the stored values.
      const candidates = new Map<string, string | undefined>();
      let legacy: string | undefined;
      for (const entry of stored) {
        if (LEGACY_RECOVERY_HASH.test(entry)) {
          legacy ??= legacyRecoveryCodeHash(canonical);
          if (entry === legacy) return entry;
          continue;
        }
        const keyId = /^h1\.([A-Za-z0-9_-]+)\./.exec(entry)?.[1];
        if (!keyId) continue;
        if (!candidates.has(keyId)) candidates.set(keyId, mac(keyId, canonical));
        if (candidates.get(keyId) === entry) return entry;
      }
      return undefined;
    },
  };
}

/** How older versions stored recovery codes (unsalted SHA-256 hex); read, never written. */
export function legacyRecoveryCodeHash(canonical: string): string {
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** Ten codes like `k3x9q-7mf2a`: 10 characters × 5 bits = 50 bits each, from the CSPRNG. */
function newRecoveryCodes(): string[] {
  const codes = new Set<string>();
  while (codes.size < RECOVERY_CODE_COUNT) {
    // 256 is a multiple of 32, so `byte & 31` is uniform over the alphabet.
    const chars = [...randomBytes(10)].map((byte) => RECOVERY_ALPHABET[byte & 31]).join('');
    codes.add(`${chars.slice(0, 5)}-${chars.slice(5)}`);
  }
  return [...codes];
}

/** What the account keeps of freshly made codes (already canonical but for the dash). */
function storedHashes(hasher: RecoveryCodeHasher, codes: readonly string[]): string[] {
  return codes.map((code) => hasher.hash(code.replace('-', '')));
}

const secretContext = (accountId: string) => `totp:${accountId}`;
const enrolmentContext = (accountId: string) => `totp-enrolment:${accountId}`;
/** What a sealed enrolment holds: the secret and when the page stops working (ms). */
const enrolmentSchema = z.object({ secret: z.string().regex(/^[A-Z2-7]{16,128}$/), exp: z.number().int() });
/** A sealed enrolment is a few hundred characters; anything much longer is not one. */
const SEALED_ENROLMENT_MAX_LENGTH = 1024;

export function createTotpService({ Account, db, secretBox, keys, issuer, clock = systemClock }: TotpServiceDeps): TotpService {
  const now = () => clock.nowMs();
  const hasher = createRecoveryCodeHasher(keys);
  const stepClaims = db.collection<StepClaim>(TOTP_USED_STEPS_COLLECTION);
  const recoveryClaims = db.collection<RecoveryClaim>(RECOVERY_CODE_USES_COLLECTION);

  /** The time step `token` is valid in, within ±1 step of now; undefined when it is not. */
  async function matchStep(secret: string, token: string): Promise<number | undefined> {
    // NOTE: otplib takes the time in seconds (`epoch`), not milliseconds.
    // NOTE: otplib's own `afterTimeStep` is not used: it reports a replay as a plain invalid
    // code, and throws (AfterTimeStepRangeExceededError) when the last used step lies beyond
    // the window, as after a clock correction. Comparing the matched step ourselves costs only
    // a one-in-a-million case: a code that also happens to be valid in a later step is refused.
    const result = await verifyOtp({
      secret,
      token,
      epoch: Math.floor(now() / 1000),
      period: STEP_SECONDS,
      epochTolerance: EPOCH_TOLERANCE_SECONDS,
    });
    // The result type also covers HOTP, whose valid result has no timeStep.
    return result.valid && 'timeStep' in result ? result.timeStep : undefined;
  }

  /** How many of these hashes have not been used (a claim decides, whatever the array says). */
  async function unusedCount(accountId: string, hashes: readonly string[]): Promise<number> {
    if (hashes.length === 0) return 0;
    const used = await recoveryClaims.countDocuments({ _id: { $in: hashes.map((hash) => `${accountId}:${hash}`) } });
    return hashes.length - used;
  }

  /** The secret and expiry of a sealed enrolment made for this account; undefined if it is not one, or expired. */
  function openEnrolment(accountId: string, sealed: string | undefined): z.infer<typeof enrolmentSchema> | undefined {
    if (!sealed || sealed.length > SEALED_ENROLMENT_MAX_LENGTH) return undefined;
    let opened: z.infer<typeof enrolmentSchema>;
    try {
      opened = enrolmentSchema.parse(JSON.parse(secretBox.open(sealed, enrolmentContext(accountId))));
    } catch (err) {
      // Tampered with, another account's, or sealed under a key no longer configured: the
      // person starts again with a new QR code. Anything else is a bug.
      if (err instanceof SecretBoxError || err instanceof SyntaxError || err instanceof z.ZodError) return undefined;
      throw err;
    }
    return opened.exp > now() ? opened : undefined;
  }

  async function qrCodeFor(otpauthUri: string): Promise<string> {
    // Error correction M survives a phone camera at an angle; the margin is the quiet zone
    // scanners need, so the page need not add one.
    return QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M', margin: 2, width: 256 });
  }

  return {
    async beginEnrolment(account, options = {}) {
      const doc = await Account.findById(account.id, { mfa: 1 }).lean();
      if (!doc) throw new AppError('account.not_found');
      if (doc.mfa?.totp?.secretSealed) throw new AppError('mfa.already_enrolled');

      const resumed = openEnrolment(account.id, options.continueFrom);
      const secret = resumed?.secret ?? generateSecret(); // 20 bytes (160 bits, RFC 4226 §4 R6), base32
      const exp = resumed?.exp ?? now() + ENROLMENT_LIFETIME_MS;
      const sealed = resumed && options.continueFrom ? options.continueFrom : secretBox.seal(JSON.stringify({ secret, exp }), enrolmentContext(account.id));
      const otpauthUri = generateURI({ issuer, label: account.email, secret });
      return { secret, otpauthUri, qrCodeDataUrl: await qrCodeFor(otpauthUri), sealed, expiresAt: new Date(exp) };
    },

    async activate(accountId, code, enrolment) {
      const token = normaliseTotpCode(code);
      if (!token) return { ok: false, reason: 'invalid' };
      const opened = openEnrolment(accountId, enrolment);
      if (!opened) return { ok: false, reason: 'expired' };
      const doc = await Account.findById(accountId, { mfa: 1 }).lean();
      if (!doc) return { ok: false, reason: 'expired' };
      if (doc.mfa?.totp?.secretSealed) return { ok: false, reason: 'already_enrolled' };

      const step = await matchStep(opened.secret, token);
      if (step === undefined) return { ok: false, reason: 'invalid' };

      // An enrolment page activates once, for as long as it could be used: two valid codes
      // racing from one page get one set of recovery codes, and a page kept open does not
      // re-enable its secret after the authenticator was removed.
      // Two pages (two tabs) hold two different secrets: one activation per account at a time,
      // and the account read again inside the lock, so the second finds the first one's app
      // instead of overwriting it (its recovery codes would then be the ones shown but not kept).
      // The lock comes first, so that a lock left by a crashed process does not use up the page.
      const lock = { _id: `${accountId}:activating`, accountId, expiresAt: new Date(now() + ACTIVATION_LOCK_MS) };
      if (!(await insertClaim(stepClaims, lock))) return { ok: false, reason: 'already_enrolled' };
      try {
        const digest = createHash('sha256').update(opened.secret).digest('base64url');
        const enrolmentClaim = { _id: `${accountId}:enrolment:${digest}`, accountId, expiresAt: new Date(Math.max(opened.exp, now() + STEP_CLAIM_LIFETIME_MS)) };
        if (!(await insertClaim(stepClaims, enrolmentClaim))) return { ok: false, reason: 'already_enrolled' };
        const current = await Account.findById(accountId, { mfa: 1 }).lean();
        if (current?.mfa?.totp?.secretSealed) return { ok: false, reason: 'already_enrolled' };
        // Sealed once, here; stepClaimId names the authenticator by this value.
        const sealed = secretBox.seal(opened.secret, secretContext(accountId));
        // The code that proved the secret is used, like any other; lastUsedStep below refuses it too.
        await insertClaim(stepClaims, { _id: stepClaimId(accountId, sealed, step), accountId, expiresAt: new Date(now() + STEP_CLAIM_LIFETIME_MS) });

        const recoveryCodes = newRecoveryCodes();
        await Account.updateOne(
          { _id: accountId },
          {
            $set: {
              'mfa.totp': { secretSealed: sealed, enabledAt: new Date(now()), lastUsedStep: step },
              // Left by older versions, which stored the secret when the page was shown.
              'mfa.pendingTotp': null,
              'mfa.recoveryCodes': storedHashes(hasher, recoveryCodes),
            },
          },
        );
        return { ok: true, recoveryCodes };
      } finally {
        await stepClaims.deleteOne({ _id: lock._id });
      }
    },

    async verify(accountId, code) {
      const token = normaliseTotpCode(code);
      if (!token) return { ok: false, reason: 'invalid' };
      const totp = (await Account.findById(accountId, { mfa: 1 }).lean())?.mfa?.totp;
      if (!totp?.secretSealed) return { ok: false, reason: 'not_enrolled' };

      const step = await matchStep(secretBox.open(totp.secretSealed, secretContext(accountId)), token);
      if (step === undefined) return { ok: false, reason: 'invalid' };
      // A code from the window must not follow a newer one (RFC 6238 §5.2: one use per step,
      // and never going back).
      if (typeof totp.lastUsedStep === 'number' && step <= totp.lastUsedStep) return { ok: false, reason: 'replayed' };
      // The arbiter between concurrent submissions of the same code: lastUsedStep above is read
      // before any of them writes it.
      if (!(await insertClaim(stepClaims, { _id: stepClaimId(accountId, totp.secretSealed, step), accountId, expiresAt: new Date(now() + STEP_CLAIM_LIFETIME_MS) }))) {
        return { ok: false, reason: 'replayed' };
      }
      // NOTE: `$max` is a read and a write on FerretDB 1.x, so racing successes in different
      // steps may leave the lower one; the step claims still refuse both for their lifetime.
      // The filter keeps a concurrent removal (or re-enrolment) from getting a stray field.
      await Account.updateOne(
        { _id: accountId, 'mfa.totp.secretSealed': totp.secretSealed },
        { $max: { 'mfa.totp.lastUsedStep': step } },
      );
      return { ok: true };
    },

    async verifyRecoveryCode(accountId, code) {
      const canonical = normaliseRecoveryCode(code);
      if (!canonical) return { ok: false, reason: 'invalid' };
      const mfa = (await Account.findById(accountId, { mfa: 1 }).lean())?.mfa;
      if (!mfa?.totp?.secretSealed) return { ok: false, reason: 'not_enrolled' };

      const hashes = mfa.recoveryCodes ?? [];
      const hash = hasher.find(canonical, hashes);
      if (!hash) return { ok: false, reason: 'invalid' };
      // Claim first: of concurrent uses of one code exactly one inserts, and a used code stays
      // refused even if the `$pull` below is lost.
      if (!(await insertClaim(recoveryClaims, { _id: `${accountId}:${hash}`, accountId, hash, usedAt: new Date(now()) }))) {
        return { ok: false, reason: 'invalid' };
      }
      await Account.updateOne({ _id: accountId }, { $pull: { 'mfa.recoveryCodes': hash } });
      return { ok: true, remaining: await unusedCount(accountId, hashes.filter((h) => h !== hash)) };
    },

    async regenerateRecoveryCodes(accountId) {
      const recoveryCodes = newRecoveryCodes();
      const result = await Account.updateOne(
        { _id: accountId, 'mfa.totp.secretSealed': { $exists: true } },
        { $set: { 'mfa.recoveryCodes': storedHashes(hasher, recoveryCodes) } },
      );
      if (result.matchedCount === 0) throw new AppError('mfa.not_enrolled');
      return recoveryCodes;
    },

    async status(accountId) {
      const mfa = (await Account.findById(accountId, { mfa: 1 }).lean())?.mfa;
      if (!mfa?.totp?.secretSealed) return { enabled: false, recoveryCodesLeft: 0 };
      return {
        enabled: true,
        enabledAt: mfa.totp.enabledAt,
        recoveryCodesLeft: await unusedCount(accountId, mfa.recoveryCodes ?? []),
      };
    },

    async remove(accountId) {
      // Field by field rather than `$unset: { mfa }`, so other factors kept under mfa survive.
      // Claims are left to expire or to the sweep: deleting recovery claims here could revive
      // a used code if this write were lost to a concurrent one.
      await Account.updateOne(
        { _id: accountId },
        { $set: { 'mfa.totp': null, 'mfa.pendingTotp': null }, $unset: { 'mfa.recoveryCodes': 1 } },
      );
    },

    async ensureIndexes() {
      // Without TTL indexes, the periodic sweep removes expired claims.
      await ensureExpiryIndex(stepClaims);
      await recoveryClaims.createIndex({ usedAt: 1 });
    },

    async sweep(at = new Date(now())) {
      let removed = (await stepClaims.deleteMany({ expiresAt: { $lte: at } })).deletedCount;

      const settled = await recoveryClaims
        .find({ usedAt: { $lte: new Date(at.getTime() - RECOVERY_CLAIM_SETTLE_MS) } })
        .sort({ usedAt: 1 })
        .limit(SWEEP_BATCH)
        .toArray();
      if (settled.length === 0) return removed;
      const accounts = await Account.find({ _id: { $in: [...new Set(settled.map((c) => c.accountId))] } }, { mfa: 1 }).lean();
      const live = new Map(accounts.map((a) => [a._id, new Set(a.mfa?.recoveryCodes ?? [])]));
      const done: string[] = [];
      for (const used of settled) {
        if (live.get(used.accountId)?.has(used.hash)) {
          // The `$pull` was lost: do it again and keep the claim until a later sweep sees it gone.
          await Account.updateOne({ _id: used.accountId }, { $pull: { 'mfa.recoveryCodes': used.hash } });
        } else {
          done.push(used._id);
        }
      }
      if (done.length > 0) removed += (await recoveryClaims.deleteMany({ _id: { $in: done } })).deletedCount;
      return removed;
    },
  };
}
