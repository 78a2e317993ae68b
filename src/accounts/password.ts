import argon2 from 'argon2';

/**
 * argon2id with OWASP's minimum profile (m=19456 KiB, t=2, p=1): about 25 ms a hash on one
 * core here. Parameters live in the hash string, so raising them later only needs
 * `needsRehash` on the next successful sign-in.
 */
export const PASSWORD_HASH_OPTIONS = {
  type: argon2.argon2id,
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** The floor no configuration goes under (NIST SP 800-63B §3.1.1.2); the policy's minimum is PASSWORD_MIN_LENGTH. */
export const PASSWORD_MIN_LENGTH = 8;
/**
 * The longest input a form or the API reads as a password to verify. New passwords are held to
 * the policy's shorter maximum (password-policy.ts); this bound only keeps argon2's input small.
 */
export const PASSWORD_MAX_LENGTH = 1024;

/**
 * Unicode NFKC (NIST SP 800-63B §3.1.1.2): the same password typed on another keyboard or input
 * method (a full-width letter, the ligature 'ﬁ', a composed or decomposed accent) is the same
 * password. Applied before every hash and every verification.
 */
export function normalisePassword(password: string): string {
  return password.normalize('NFKC');
}

export async function hashPassword(password: string): Promise<string> {
  return argon2.hash(normalisePassword(password), PASSWORD_HASH_OPTIONS);
}

async function verifyExact(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    // A malformed stored hash is a failed verification, never a crash.
    return false;
  }
}

/**
 * Verifies the NFKC form first. Hashes made before normalisation hold the password as it was
 * typed, so when the input is not already in NFKC and that fails, the raw input is tried once.
 *
 * NOTE: the cost. A wrong password that is not in NFKC (rare: full-width forms, ligatures,
 * decomposed accents) costs two argon2 verifications (about 50 ms instead of 25 on one core).
 * It depends on the input only, never on the account (the unknown-account path verifies against
 * the dummy hash the same way), so it reveals nothing; the sign-in throttles bound how often an
 * attacker can make us pay it. Once every stored hash is of a normalised password the fallback
 * can go.
 */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  const normalised = normalisePassword(password);
  if (await verifyExact(hash, normalised)) return true;
  return normalised !== password && verifyExact(hash, password);
}

export function passwordNeedsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, PASSWORD_HASH_OPTIONS);
}

/**
 * A hash of a random password, made once per process: signing in with an unknown email
 * verifies against it, so the answer takes as long as for a known email with a wrong
 * password (no user enumeration by timing).
 */
export function createDummyHash(): Promise<string> {
  return hashPassword(`dummy-${Math.random()}-${Date.now()}`);
}
