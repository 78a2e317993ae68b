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

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 1024;

export async function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, PASSWORD_HASH_OPTIONS);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    // A malformed stored hash is a failed verification, never a crash.
    return false;
  }
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
