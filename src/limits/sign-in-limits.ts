import { createHmac, hkdfSync } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

import { defaults } from '../../config/defaults.js';
import type { Config } from '../config/config.js';
import type { AttemptLimiter, Gate, LimitRule } from './attempt-limiter.js';

/**
 * The limits of this server, named: which key each one counts and under which rule. One place, so
 * that every route asks for the same gate the same way (src/interactions, src/account, the token
 * endpoint's client authentication).
 *
 * The rules that hold them together:
 *  - One counter per factor. Guessing one factor never delays another: email codes are counted
 *    per address, passwords per address, authenticator and recovery codes per account, each on
 *    its own. Whoever knows only an address can slow down codes and passwords for it (as for any
 *    server), never the owner's authenticator app.
 *  - Keys that name an address are the same whether or not an account has it, so a limit reveals
 *    nothing about who has an account. Addresses are kept as keyed hashes, never in the clear.
 *  - Everything a sign-in page checks is also counted per client IP (IPv6 per /64, what one
 *    subscriber usually gets), so one source cannot spray guesses across many addresses.
 */

export type FactorKind = 'totp' | 'recovery';

export interface SignInLimits {
  limiter: AttemptLimiter;
  /** Wrong passwords for an address (first step or second), known or not. */
  password(email: string): Gate;
  /** Wrong email codes for an address (first factor or second), known or not. */
  emailCode(email: string): Gate;
  /** Wrong authenticator (or enrolment) codes, or recovery codes, for an account. */
  factor(accountId: string, kind: FactorKind): Gate;
  /** Refused passwords and codes on the sign-in pages from one IP (network). */
  signInFromIp(ip: string): Gate;
  /** Codes asked for from one IP (network). */
  codeSendsFromIp(ip: string): Gate;
  /** Codes mailed to one address in an hour. */
  codesToAddress(email: string): Gate;
  /** Codes mailed to one address in an hour at the request of one IP (network). */
  codesToAddressFromIp(email: string, ip: string): Gate;
  /** Failed client authentications at the token, introspection and revocation endpoints from one IP (network). */
  clientAuthFromIp(ip: string): Gate;
  /** Sign-ups started from one IP (network), per IP_LIMIT_WINDOW. */
  signUpsFromIp(ip: string): Gate;
  /** Sign-ups started for one address (known or not) in an hour. */
  signUpsForAddress(email: string): Gate;
  /** Wrong sign-up verification codes for an address. */
  signUpCode(email: string): Gate;
  /** Password resets asked for from one IP (network), per IP_LIMIT_WINDOW. */
  resetRequestsFromIp(ip: string): Gate;
  /** Password resets asked for one address (known or not) in an hour. */
  resetRequestsForAddress(email: string): Gate;
  /** Wrong password-reset codes (and unknown reset links) for an address. */
  resetCode(email: string): Gate;
  /** The keys that belong to an account (forgotten when it is deleted). */
  accountKeys(accountId: string): string[];
}

/** The keys of an account's own factors (the address's keys do not name the account). */
export function accountLimitKeys(accountId: string): string[] {
  return [`totp:${accountId}`, `recovery:${accountId}`];
}

/** Failures of a factor are forgotten a day after they happened (or at the next success). */
const FORGET_AFTER_SECONDS = 24 * 60 * 60;
const HOUR_SECONDS = 60 * 60;

/**
 * The part of an address that one party controls: an IPv4 address as it is (IPv4-mapped IPv6
 * included), an IPv6 address by its /64 prefix (RFC 6177: a subscriber commonly gets at least a
 * /64, so counting single IPv6 addresses would let one party rotate through billions).
 */
export function ipNetwork(ip: string): string {
  const address = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return 'unknown';
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // (An embedded IPv4 tail counts as one group here; it only ever sits in the last 32 bits.)
  const groups = [...left, ...Array.from({ length: Math.max(0, 8 - left.length - right.length) }, () => '0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export function createSignInLimits(limiter: AttemptLimiter, config: Pick<Config, 'signInThrottle' | 'factorThrottle' | 'ipLimits' | 'emailCodeAddressLimits' | 'encryptionKeys'> &
    Partial<Pick<Config, 'signUp' | 'passwordReset'>>): SignInLimits {
  const [current] = config.encryptionKeys;
  if (!current) throw new Error('no encryption key');
  // NOTE: a key of its own (HKDF, RFC 5869), never the encryption key itself. A new first
  // ENCRYPTION_KEYS entry starts the counts afresh, which only ever forgives recent failures.
  const hashKey = Buffer.from(hkdfSync('sha256', current.key, Buffer.alloc(0), 'oidc-server limit keys v1', 32));
  const address = (email: string) => createHmac('sha256', hashKey).update(email.trim().toLowerCase()).digest('base64url').slice(0, 32);

  const factorRule = (policy: { freeAttempts: number; maxDelaySeconds: number }): LimitRule => ({
    kind: 'progressive',
    freeAttempts: policy.freeAttempts,
    maxDelaySeconds: policy.maxDelaySeconds,
    forgetAfterSeconds: FORGET_AFTER_SECONDS,
  });
  const passwordRule = factorRule(config.signInThrottle);
  const codeRule = factorRule(config.factorThrottle);
  const window = (limit: number, windowSeconds = config.ipLimits.windowSeconds): LimitRule => ({ kind: 'window', limit, windowSeconds });

  return {
    limiter,
    password: (email) => ({ key: `password:${address(email)}`, rule: passwordRule }),
    emailCode: (email) => ({ key: `email-code:${address(email)}`, rule: codeRule }),
    factor: (accountId, kind) => ({ key: `${kind}:${accountId}`, rule: codeRule }),
    signInFromIp: (ip) => ({ key: `ip:sign-in:${ipNetwork(ip)}`, rule: window(config.ipLimits.signInFailures) }),
    codeSendsFromIp: (ip) => ({ key: `ip:code-send:${ipNetwork(ip)}`, rule: window(config.ipLimits.codeSends) }),
    codesToAddress: (email) => ({ key: `code-send:${address(email)}`, rule: window(config.emailCodeAddressLimits.perHour, HOUR_SECONDS) }),
    codesToAddressFromIp: (email, ip) => ({
      key: `code-send:${address(email)}:${ipNetwork(ip)}`,
      rule: window(config.emailCodeAddressLimits.perHourFromOneIp, HOUR_SECONDS),
    }),
    clientAuthFromIp: (ip) => ({ key: `ip:client-auth:${ipNetwork(ip)}`, rule: window(config.ipLimits.clientAuthFailures) }),
    // NOTE: sign-up and reset keys name the address the same way whether or not an account has
    // it, like every other address key here, so these limits reveal nothing either.
    signUpsFromIp: (ip) => ({ key: `ip:sign-up:${ipNetwork(ip)}`, rule: window(config.signUp?.perIp ?? defaults.signUp.perIp) }),
    signUpsForAddress: (email) => ({
      key: `sign-up:${address(email)}`,
      rule: window(config.signUp?.perAddressPerHour ?? defaults.signUp.perAddressPerHour, HOUR_SECONDS),
    }),
    signUpCode: (email) => ({ key: `sign-up-code:${address(email)}`, rule: codeRule }),
    resetRequestsFromIp: (ip) => ({ key: `ip:reset:${ipNetwork(ip)}`, rule: window(config.passwordReset?.perIp ?? defaults.passwordReset.perIp) }),
    resetRequestsForAddress: (email) => ({
      key: `reset:${address(email)}`,
      rule: window(config.passwordReset?.perAddressPerHour ?? defaults.passwordReset.perAddressPerHour, HOUR_SECONDS),
    }),
    resetCode: (email) => ({ key: `reset-code:${address(email)}`, rule: codeRule }),
    accountKeys: accountLimitKeys,
  };
}
