import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { insertClaim, isDuplicateKey } from '../db/claims.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';

/**
 * One-time codes sent by email, for each purpose (sign-in, second factor, sign-up verification,
 * password reset, a new address in the account centre; a purpose may have its own lifetime): 6 digits from a CSPRNG, stored only as a salted
 * HMAC, valid for `ttlSeconds`, single use, at most `maxAttempts` attempts in total, and at
 * most one new code per interaction, address and purpose every `resendIntervalSeconds`.
 *
 * A code belongs to the interaction that asked for it (`binding`, the interaction uid): it is
 * only ever looked up through that binding, so a code typed into another browser's
 * interaction finds nothing there. For the same reason a code asked for in one browser never
 * withdraws the code another browser is using: a stranger who asks for codes for someone's
 * address cannot cancel the owner's. How many codes one address (or one IP) may get in all is
 * the limiter's business (src/limits/sign-in-limits.ts), not this service's.
 *
 * NOTE: every "only once" and "at most N" rule here rests on inserting a document under a
 * unique `_id` and treating a duplicate key error (11000) as "someone else got it". FerretDB
 * 1.x applies conditional updates and `$inc` in separate read and write steps, so concurrent
 * `updateOne({ _id, used: null }, …)` calls all report success; a unique insert is atomic on
 * every server we support, MongoDB and FerretDB alike, and needs no transaction.
 */

/**
 * What a code is for. Codes of one purpose are never found by another's verify: a sign-up or
 * password-reset code cannot sign anyone in.
 */
export type EmailCodePurpose = 'sign-in' | 'second-factor' | 'sign-up' | 'password-reset' | 'email-change';

export interface EmailCodePolicy {
  ttlSeconds: number;
  resendIntervalSeconds: number;
  maxAttempts: number;
  /** Settings that differ for a purpose (e.g. a sign-up code lives longer than a sign-in code). */
  purposes?: Partial<Record<EmailCodePurpose, Partial<Omit<EmailCodePolicy, 'purposes'>>>> | undefined;
}

export type IssueResult =
  | { ok: true; code: string; expiresAt: Date }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export type VerifyResult =
  | { ok: true; accountId: string; email: string }
  | { ok: false; reason: 'invalid' | 'expired' | 'exhausted' | 'missing' };

export interface EmailCodeService {
  /** accountId null (unknown or disabled account): record a code nobody can redeem, with the same writes and the same answer, so the caller's page and timing are identical; the caller simply doesn't mail it. */
  issue(input: { email: string; accountId: string | null; binding: string; purpose: EmailCodePurpose }): Promise<IssueResult>;
  verify(input: { binding: string; purpose: EmailCodePurpose; code: string }): Promise<VerifyResult>;
  /** The code currently pending for this binding (for the code page: which address, when a resend is allowed). */
  pending(input: { binding: string; purpose: EmailCodePurpose }): Promise<{ email: string; expiresAt: Date; resendAfterSeconds: number } | undefined>;
  /**
   * Kills the code pending for this binding (its mail could not be sent). The resend wait stays,
   * so a failing mail server is not asked again at once.
   */
  discard(input: { binding: string; purpose: EmailCodePurpose }): Promise<void>;
  /** Kills every pending code of this purpose for an account, whatever its binding (its password was just reset). */
  discardForAccount(input: { accountId: string; purpose: EmailCodePurpose }): Promise<void>;
  ensureIndexes(): Promise<void>;
  /** Removes expired codes and claims (servers without TTL indexes); returns how many documents went. */
  sweep(now?: Date): Promise<number>;
}

/** One document per issued code. */
export interface EmailCodeRecord {
  /** Random, opaque; attempt and use claims are named after it. */
  _id: string;
  /** The interaction uid the code was issued for; verify looks nowhere else. */
  binding: string;
  purpose: EmailCodePurpose;
  /** sha256 of purpose, binding and normalised email: names the resend slots of this interaction and address. */
  emailKey: string;
  /** Normalised address, only to show "sent to …" on the code page. */
  email: string;
  /** null: nobody has this address (or the account is disabled); the code can never be redeemed. */
  accountId: string | null;
  /** Per-code random HMAC key (base64url). */
  salt: string;
  /** HMAC-SHA256(salt, code), base64url. */
  hash: string;
  createdAt: Date;
  expiresAt: Date;
}

/** `{ _id: "<codeId>:attempt:<k>" | "<codeId>:used", expiresAt }`: see verify. */
interface CodeClaim {
  _id: string;
  /** Why a `:used` claim exists: redeemed, or taken to kill a replaced or discarded code. */
  reason?: 'used' | 'replaced';
  expiresAt: Date;
}

/** `{ _id: "<emailKey>:<slot>", emailKey, slot, expiresAt }`: see claimResendSlots. */
interface ResendClaim {
  _id: string;
  emailKey: string;
  slot: number;
  expiresAt: Date;
}

export const EMAIL_CODES_COLLECTION = 'email_codes';
export const EMAIL_CODE_CLAIMS_COLLECTION = 'email_code_claims';
export const EMAIL_CODE_RESEND_CLAIMS_COLLECTION = 'email_code_resend_claims';

const CODE_DIGITS = 6;

/**
 * The resend interval is cut into this many slots (see claimResendSlots): more slots bring the
 * wait closer to exactly resendIntervalSeconds, at the cost of one more small document per issue.
 */
const RESEND_SLOTS = 30;

/**
 * Claims outlive what they guard by this much, so that a node whose clock runs ahead cannot
 * sweep away an attempt slot or resend slot that a node behind it still relies on.
 */
const CLAIM_GRACE_MS = 5 * 60 * 1000;

/** Inserts a claim; false when another caller already holds it. */
function claim<T extends { _id: string }>(collection: mongo.Collection<T>, doc: T): Promise<boolean> {
  return insertClaim(collection, doc as mongo.OptionalUnlessRequiredId<T>);
}

function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

function emailKeyFor(purpose: EmailCodePurpose, binding: string, email: string): string {
  return createHash('sha256').update(`${purpose}\n${binding}\n${normaliseEmail(email)}`).digest('base64url');
}

/**
 * NOTE: a per-code salt keeps equal codes from looking equal and rules out precomputed tables,
 * but a million candidates are cheap to try: someone holding a copy of the database can still
 * recover a live code. What protects codes is their short life and the attempt limit.
 */
function hashCode(salt: string, code: string): Buffer {
  return createHmac('sha256', Buffer.from(salt, 'base64url')).update(code).digest();
}

function newCode(): string {
  return randomInt(0, 10 ** CODE_DIGITS)
    .toString()
    .padStart(CODE_DIGITS, '0');
}

function assertPolicy(policy: Omit<EmailCodePolicy, 'purposes'>): void {
  const { ttlSeconds, resendIntervalSeconds, maxAttempts } = policy;
  if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) throw new RangeError('email code ttlSeconds must be a positive number');
  if (!(Number.isFinite(resendIntervalSeconds) && resendIntervalSeconds >= 0)) {
    throw new RangeError('email code resendIntervalSeconds must be zero or more');
  }
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1)) throw new RangeError('email code maxAttempts must be a whole number of at least 1');
}

export function createEmailCodeService(db: mongo.Db, policy: EmailCodePolicy, clock: Clock = systemClock): EmailCodeService {
  const now = () => clock.nowMs();
  const codes = db.collection<EmailCodeRecord>(EMAIL_CODES_COLLECTION);
  const claims = db.collection<CodeClaim>(EMAIL_CODE_CLAIMS_COLLECTION);
  const resendClaims = db.collection<ResendClaim>(EMAIL_CODE_RESEND_CLAIMS_COLLECTION);

  interface Settings {
    ttlMs: number;
    intervalMs: number;
    slotMs: number;
    /** Slots a code holds after its own: slotsAhead * slotMs >= the interval. */
    slotsAhead: number;
    maxAttempts: number;
  }
  const settingsFor = (purpose: EmailCodePurpose): Settings => {
    const { purposes, ...base } = policy;
    const merged = { ...base, ...purposes?.[purpose] };
    assertPolicy(merged);
    const intervalMs = merged.resendIntervalSeconds * 1000;
    const slotMs = Math.max(1, Math.ceil(intervalMs / RESEND_SLOTS));
    return { ttlMs: merged.ttlSeconds * 1000, intervalMs, slotMs, slotsAhead: Math.ceil(intervalMs / slotMs), maxAttempts: merged.maxAttempts };
  };
  // Checked at construction, every purpose: a bad setting fails the start, not a request.
  const settings = Object.fromEntries(
    (['sign-in', 'second-factor', 'sign-up', 'password-reset', 'email-change'] as const).map((purpose) => [purpose, settingsFor(purpose)]),
  ) as Record<EmailCodePurpose, Settings>;

  /**
   * Seconds until the resend slots held for this key let a new code through (0: now). NOTE: the
   * key names the purpose, so purposes with different slot sizes never share slots.
   */
  async function resendWait({ intervalMs, slotMs }: Settings, emailKey: string, at: number): Promise<number> {
    if (intervalMs === 0) return 0;
    const latest = await resendClaims.findOne({ emailKey, slot: { $gte: Math.floor(at / slotMs) } }, { sort: { slot: -1 } });
    if (!latest) return 0;
    return Math.max(1, Math.ceil(((latest.slot + 1) * slotMs - at) / 1000));
  }

  /**
   * The resend throttle, race-safe with unique inserts only.
   *
   * Time is cut into slots of slotMs (interval / RESEND_SLOTS, rounded up). An issue at time t
   * with s = floor(t / slotMs) must claim every slot s, s+1, …, s+slotsAhead, inserted in that
   * order with an ordered insertMany that stops at the first duplicate; only a caller that
   * claimed them all may send a code.
   *
   * - At most one code per interval: two winners hold disjoint runs, so s2 >= s1 + slotsAhead + 1
   *   and t2 >= s2 * slotMs > t1 + slotsAhead * slotMs >= t1 + interval.
   * - Concurrent callers that no earlier code holds back cannot all lose: a loser stopped at a
   *   slot x that another caller inserted, who therefore got past x and either finished its run
   *   or stopped at a higher slot; since everyone inserts upwards, following "who beat me" ends
   *   at a caller that got its whole run (the argument for taking locks in one global order).
   *   With the first point: of concurrent issues for one address exactly one wins.
   * - A loser's partial run lies below the winner's first slot, i.e. in the past: it can never
   *   block a later caller, whose first slot is at or after the current one.
   * - The cost is a wait between the interval and the interval plus two slots (62 s for 60 s).
   *
   * Each claim expires at the end of its slot (plus a grace): after that no caller can start
   * at or below it, so the sweep or a TTL index can remove it without reopening anything.
   */
  async function claimResendSlots(s: Settings, emailKey: string, at: number): Promise<{ ok: true } | { ok: false; retryAfterSeconds: number }> {
    const { intervalMs, slotMs, slotsAhead } = s;
    if (intervalMs === 0) return { ok: true };
    // A cheap read first: a caller who is plainly too early writes nothing.
    const wait = await resendWait(s, emailKey, at);
    if (wait > 0) return { ok: false, retryAfterSeconds: wait };
    const first = Math.floor(at / slotMs);
    const run: ResendClaim[] = [];
    for (let slot = first; slot <= first + slotsAhead; slot += 1) {
      run.push({ _id: `${emailKey}:${slot}`, emailKey, slot, expiresAt: new Date((slot + 1) * slotMs + CLAIM_GRACE_MS) });
    }
    try {
      await resendClaims.insertMany(run, { ordered: true });
      return { ok: true };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      return { ok: false, retryAfterSeconds: Math.max(1, await resendWait(s, emailKey, at)) };
    }
  }

  /**
   * Kills the codes matching the filter. Taking their `:used` claim (not just deleting them)
   * makes a verify that read such a code a moment ago lose its own `:used` claim, so a replaced
   * or discarded code cannot slip through afterwards.
   */
  async function withdraw(filter: mongo.Filter<EmailCodeRecord>): Promise<void> {
    const previous = await codes.find(filter, { projection: { _id: 1, expiresAt: 1 } }).toArray();
    if (previous.length === 0) return;
    for (const record of previous) {
      await claim(claims, { _id: `${record._id}:used`, reason: 'replaced', expiresAt: new Date(record.expiresAt.getTime() + CLAIM_GRACE_MS) });
    }
    await codes.deleteMany({ _id: { $in: previous.map((r) => r._id) } });
  }

  /**
   * Attempt k of a code is the document `<codeId>:attempt:<k>`; a caller takes the lowest free
   * k by trying inserts upwards. Since nobody tries k before seeing k-1 taken, the taken slots
   * are always 1..m, so counting them is a safe place to start; concurrent callers that counted
   * the same m just move on to the next k after a duplicate key.
   */
  async function claimAttempt(record: EmailCodeRecord, maxAttempts: number): Promise<number | undefined> {
    const prefix = `${record._id}:attempt:`;
    // ';' is the character after ':', so this range is exactly the ids starting with the prefix.
    const taken = await claims.countDocuments({ _id: { $gt: prefix, $lt: `${record._id}:attempt;` } });
    const expiresAt = new Date(record.expiresAt.getTime() + CLAIM_GRACE_MS);
    for (let k = taken + 1; k <= maxAttempts; k += 1) {
      if (await claim(claims, { _id: `${prefix}${k}`, expiresAt })) return k;
    }
    return undefined;
  }

  async function current(binding: string, purpose: EmailCodePurpose): Promise<EmailCodeRecord | null> {
    // issue() replaces earlier codes of the binding; the sort only matters while it is at it.
    return codes.findOne({ binding, purpose }, { sort: { createdAt: -1 } });
  }

  return {
    async issue({ email, accountId, binding, purpose }) {
      // NOTE: the same reads and writes whether or not accountId is null: the throttle is per
      // address, known or not, and an unknown address gets a real (unredeemable) code record.
      const at = now();
      const normalised = normaliseEmail(email);
      const emailKey = emailKeyFor(purpose, binding, normalised);
      const s = settings[purpose];
      const slot = await claimResendSlots(s, emailKey, at);
      if (!slot.ok) return { ok: false, reason: 'throttled', retryAfterSeconds: slot.retryAfterSeconds };

      // A new code replaces whatever this interaction was sent before (for this address or
      // another typed first): verify sees one code only. NOTE: codes of other interactions stay,
      // even for the same address: they may be the owner's, in another browser.
      await withdraw({ purpose, binding });
      const code = newCode();
      const salt = randomBytes(16).toString('base64url');
      const expiresAt = new Date(at + s.ttlMs);
      await codes.insertOne({
        _id: randomBytes(16).toString('base64url'),
        binding,
        purpose,
        emailKey,
        email: normalised,
        accountId,
        salt,
        hash: hashCode(salt, code).toString('base64url'),
        createdAt: new Date(at),
        expiresAt,
      });
      return { ok: true, code, expiresAt };
    },

    async verify({ binding, purpose, code }) {
      const record = await current(binding, purpose);
      if (!record) return { ok: false, reason: 'missing' };
      if (record.expiresAt.getTime() <= now()) return { ok: false, reason: 'expired' };

      // Every attempt, right or wrong, takes a slot first: N concurrent guesses get at most
      // maxAttempts comparisons between them.
      const { maxAttempts } = settings[purpose];
      const attempt = await claimAttempt(record, maxAttempts);
      if (attempt === undefined) return { ok: false, reason: 'exhausted' };

      const given = hashCode(record.salt, code.replace(/\s+/g, ''));
      const stored = Buffer.from(record.hash, 'base64url');
      const matches = stored.length === given.length && timingSafeEqual(stored, given);
      if (!matches || record.accountId === null) {
        // The last wrong attempt already says so: the person needs a new code, not another try.
        return { ok: false, reason: attempt >= maxAttempts ? 'exhausted' : 'invalid' };
      }
      // The slot may have been taken just as the code ran out.
      if (record.expiresAt.getTime() <= now()) return { ok: false, reason: 'expired' };

      const won = await claim(claims, { _id: `${record._id}:used`, reason: 'used', expiresAt: new Date(record.expiresAt.getTime() + CLAIM_GRACE_MS) });
      // Lost: redeemed by a concurrent request, or replaced by a newer code a moment ago.
      if (!won) return { ok: false, reason: 'missing' };
      await codes.deleteOne({ _id: record._id });
      return { ok: true, accountId: record.accountId, email: record.email };
    },

    async pending({ binding, purpose }) {
      const record = await current(binding, purpose);
      const at = now();
      if (!record || record.expiresAt.getTime() <= at) return undefined;
      return { email: record.email, expiresAt: record.expiresAt, resendAfterSeconds: await resendWait(settings[purpose], record.emailKey, at) };
    },

    async discard({ binding, purpose }) {
      await withdraw({ binding, purpose });
    },

    async discardForAccount({ accountId, purpose }) {
      if (accountId) await withdraw({ accountId, purpose });
    },

    async ensureIndexes() {
      await codes.createIndex({ binding: 1, purpose: 1 }, { name: 'binding_purpose' });
      await codes.createIndex({ accountId: 1, purpose: 1 }, { name: 'accountId_purpose', sparse: true });
      await resendClaims.createIndex({ emailKey: 1, slot: 1 }, { name: 'emailKey_slot' });
      // Without TTL indexes, the periodic sweep removes expired codes and claims.
      for (const collection of [codes, claims, resendClaims]) await ensureExpiryIndex(collection);
    },

    async sweep(at = new Date(now())) {
      let removed = 0;
      for (const collection of [codes, claims, resendClaims] as unknown as mongo.Collection<mongo.Document>[]) {
        removed += (await collection.deleteMany({ expiresAt: { $lte: at } })).deletedCount;
      }
      return removed;
    },
  };
}
