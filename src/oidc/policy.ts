import { interactionPolicy } from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { AccountView } from '../accounts/account.service.js';
import type { Config } from '../config/config.js';

/**
 * Who must show a second factor, and what a finished sign-in tells the provider.
 *
 * One set of rules serves two places, so they cannot disagree:
 *  - the sign-in pages (src/interactions) ask `mfaReasons` after the first factor, and tell the
 *    provider the person is signed in (`login` result) only once every required factor is done;
 *  - the provider's interaction policy has an `mfa` prompt whose checks (one per reason) ask the
 *    same question of an existing session: that is step-up (signed in with one factor, now meeting
 *    a request that needs two) and the safety net behind every other route to consent.
 */

/** How a person proved who they are. */
export type Factor = 'pwd' | 'email' | 'totp' | 'recovery';

/**
 * RFC 8176 `amr` values per factor. `email` (a one-time code sent by email) is not in the RFC 8176
 * registry, which has no value for it; it is the name other identity providers use. A recovery
 * code is a one-time password (`otp`), as a TOTP code is.
 */
export const AMR: Record<Factor, string> = { pwd: 'pwd', email: 'email', totp: 'otp', recovery: 'otp' };

/** Why a sign-in needs a second factor: the `mfa` prompt's check reasons. */
export type MfaReason = 'totp_enrolled' | 'client_requires_mfa' | 'acr_requested' | 'admin_role';

export interface MfaInput {
  account: Pick<AccountView, 'totpEnabled' | 'roles'>;
  /** The client's `require_mfa` metadata. */
  clientRequiresMfa: boolean;
  /** The request's `acr_values` (OIDC Core §3.1.2.1), split. */
  acrValues: readonly string[];
}

export interface MfaSettings {
  mfa: Config['mfa'];
  acr: Config['acr'];
}

export function mfaReasons(input: MfaInput, settings: MfaSettings): MfaReason[] {
  const reasons: MfaReason[] = [];
  if (input.account.totpEnabled) reasons.push('totp_enrolled');
  if (input.clientRequiresMfa) reasons.push('client_requires_mfa');
  // acr_values are voluntary claims (OIDC Core §5.5.1.1), but a relying party that names the
  // multi-factor class is asking for it: we honour the request rather than downgrade silently.
  if (input.acrValues.includes(settings.acr.multiFactor)) reasons.push('acr_requested');
  if (settings.mfa.requiredForAdmins && input.account.roles.includes('admin')) reasons.push('admin_role');
  return reasons;
}

/** Two different kinds of factor make a multi-factor sign-in; two passwords would not. */
export function isMultiFactor(factors: readonly Factor[]): boolean {
  const kinds = new Set(factors.map((f) => (f === 'recovery' ? 'totp' : f)));
  return kinds.size >= 2;
}

export function amrFor(factors: readonly Factor[]): string[] {
  const amr = [...new Set(factors.map((f) => AMR[f]))];
  if (isMultiFactor(factors)) amr.push('mfa');
  return amr;
}

/** The `login` result for oidc-provider: what the session remembers and the ID token says. */
export function loginResult(accountId: string, factors: readonly Factor[], settings: MfaSettings, now = Date.now()) {
  return {
    accountId,
    amr: amrFor(factors),
    acr: isMultiFactor(factors) ? settings.acr.multiFactor : settings.acr.singleFactor,
    // auth_time (OIDC Core §2): when the person last authenticated, so a step-up renews it.
    ts: Math.floor(now / 1000),
    remember: true,
  };
}

/** What the factors recorded in a session (its `amr`) already cover. */
export function factorsFromAmr(amr: readonly string[] | undefined): Factor[] {
  const factors: Factor[] = [];
  if (amr?.includes('pwd')) factors.push('pwd');
  if (amr?.includes('email')) factors.push('email');
  if (amr?.includes('otp')) factors.push('totp');
  return factors;
}

/** The ways a person may complete the second factor, given what they have done already. */
export interface SecondFactorOptions {
  /** An authenticator app code (and, with it, a recovery code). */
  totp: boolean;
  /** A code by email (accounts without an authenticator app, when configuration allows). */
  email: boolean;
  /** The password (after a passwordless first step, for accounts without an authenticator app). */
  password: boolean;
  /** No usable second factor: the person must set up an authenticator app now. */
  enrol: boolean;
}

export function secondFactorOptions(
  account: Pick<AccountView, 'totpEnabled' | 'hasPassword'>,
  done: readonly Factor[],
  settings: MfaSettings,
): SecondFactorOptions {
  if (account.totpEnabled) return { totp: true, email: false, password: false, enrol: false };
  const email = settings.mfa.emailFallback && !done.includes('email');
  const password = account.hasPassword && !done.includes('pwd');
  return { totp: false, email, password, enrol: !email && !password };
}

/**
 * Where provider.ts's findAccount keeps our AccountView on the provider's Account object
 * (`ctx.oidc.account`, loaded before the interaction policy runs).
 */
export const ACCOUNT_VIEW = Symbol('accountView');

function sessionAccount(ctx: KoaContextWithOIDC): Pick<AccountView, 'totpEnabled' | 'roles'> | undefined {
  const account = ctx.oidc.account as unknown as { [ACCOUNT_VIEW]?: AccountView } | undefined;
  return account?.[ACCOUNT_VIEW];
}

/**
 * Our own boolean client metadata (`require_mfa`, `first_party`; registered as extraClientMetadata
 * in provider.ts). NOTE: the provider keeps extra metadata under its snake_case name on the Client
 * instance; only the metadata it knows itself becomes camelCase.
 */
export function clientFlag(client: unknown, name: 'require_mfa' | 'first_party' | 'dynamically_registered'): boolean {
  return typeof client === 'object' && client !== null && (client as Record<string, unknown>)[name] === true;
}

function clientRequiresMfa(ctx: KoaContextWithOIDC): boolean {
  return clientFlag(ctx.oidc.client, 'require_mfa');
}

function acrValuesOf(ctx: KoaContextWithOIDC): string[] {
  const raw = ctx.oidc.params?.acr_values;
  return typeof raw === 'string' ? raw.split(' ').filter(Boolean) : [];
}

/**
 * oidc-provider's default prompts (login, consent) with our `mfa` prompt between them. Its checks
 * run only for a session that already has an account; a session without one meets `login` first.
 */
export function createInteractionPolicy(settings: MfaSettings): interactionPolicy.DefaultPolicy {
  const { Prompt, Check, base } = interactionPolicy;
  const policy = base();

  // A session whose account was disabled or deleted signs in again. NOTE: the library's login
  // prompt looks only at the session's accountId; without this check the consent check meets a
  // request with no account and no grant, and fails with a server error.
  policy.get('login')?.checks.push(
    new Check('account_unavailable', 'the session account is disabled or no longer exists', (ctx) =>
      ctx.oidc.session?.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
    ),
  );

  // Worked out once per authorization request, shared by the four checks below.
  const reasonsFor = (ctx: KoaContextWithOIDC): Set<MfaReason> => {
    const cached = (ctx.state as { mfaReasons?: Set<MfaReason> }).mfaReasons;
    if (cached) return cached;
    const reasons = new Set<MfaReason>();
    const { session } = ctx.oidc;
    // The session's enabled account (findAccount refuses disabled ones); already multi-factor:
    // nothing more to ask.
    const account = sessionAccount(ctx);
    if (account && session?.accountId && !session.amr?.includes('mfa')) {
      for (const r of mfaReasons({ account, clientRequiresMfa: clientRequiresMfa(ctx), acrValues: acrValuesOf(ctx) }, settings)) {
        reasons.add(r);
      }
    }
    (ctx.state as { mfaReasons?: Set<MfaReason> }).mfaReasons = reasons;
    return reasons;
  };

  const check = (reason: MfaReason, description: string) =>
    new Check(reason, description, (ctx) => (reasonsFor(ctx).has(reason) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT));

  const mfa = new Prompt(
    { name: 'mfa', requestable: false },
    check('totp_enrolled', 'the account has an authenticator app'),
    check('client_requires_mfa', 'the client requires a second factor'),
    check('acr_requested', 'the request asked for a multi-factor authentication context'),
    check('admin_role', 'administrators sign in with a second factor'),
  );
  const consentIndex = policy.findIndex((p) => p.name === 'consent');
  policy.splice(consentIndex === -1 ? policy.length : consentIndex, 0, mfa);
  return policy;
}
