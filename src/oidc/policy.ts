import { interactionPolicy } from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { AccountView } from '../accounts/account.service.js';
import type { Config } from '../config/config.js';

/**
 * Who must show a second factor, and what a finished sign-in tells the provider.
 *
 * One set of rules serves two places, so they cannot disagree:
 *  - the sign-in flow (src/sign-in, `transition`) asks `requiredAssurance` after each factor, and
 *    tells the provider the person is signed in (`login` result) only once it is reached;
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

/**
 * How strongly a sign-in was proven, in order:
 *  1. one factor;
 *  2. two kinds of factor, neither of them an authenticator app (a password and a code by email:
 *     whoever reads the mailbox and knows the password, which one phishing page can collect);
 *  3. two kinds of factor, one of them an authenticator app or one of its recovery codes.
 * The ID token's `acr` names the level (config.acr), so a relying party can tell 2 from 3, and ask
 * for 3 alone with `acr_values=<multiFactor>`.
 */
export type Assurance = 1 | 2 | 3;

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

/** The level an `acr` value of ours stands for (undefined: not one of ours). */
export function assuranceOfAcr(acr: string, settings: Pick<MfaSettings, 'acr'>): Assurance | undefined {
  if (acr === settings.acr.multiFactor) return 3;
  if (acr === settings.acr.emailSecondFactor) return 2;
  if (acr === settings.acr.singleFactor) return 1;
  return undefined;
}

/**
 * The level `acr_values` asks for, or undefined when it names none of our classes. The values are
 * in order of preference (OIDC Core §3.1.2.1) and each is acceptable to the relying party: the
 * sign-in meets the first one the person can meet. So a second factor is asked for only when no
 * single-factor class was offered, wherever in the list it stands, and the ID token's `acr` names
 * the level actually reached (acrFor). Among two-factor classes the first one a person can meet
 * is their authenticator app's when they have one (which `totp_enrolled` asks for anyway) and
 * otherwise the lower one: the lowest level listed, in both cases.
 */
export function requestedAssurance(acrValues: readonly string[], settings: Pick<MfaSettings, 'acr'>): Assurance | undefined {
  const levels = acrValues.map((v) => assuranceOfAcr(v, settings)).filter((l): l is Assurance => l !== undefined);
  return levels.length > 0 ? (Math.min(...levels) as Assurance) : undefined;
}

/** The reasons a sign-in needs more than one factor, each with the level it needs. */
export function mfaRequirements(input: MfaInput, settings: MfaSettings): Map<MfaReason, Assurance> {
  const reasons = new Map<MfaReason, Assurance>();
  // An account that has an authenticator app always uses it.
  if (input.account.totpEnabled) reasons.set('totp_enrolled', 3);
  // A client's require_mfa takes any second factor this server offers (the email code included,
  // with MFA_EMAIL_FALLBACK); a client that wants an authenticator says so with acr_values.
  if (input.clientRequiresMfa) reasons.set('client_requires_mfa', 2);
  // acr_values are voluntary claims (OIDC Core §5.5.1.1), but a relying party that names a
  // multi-factor class is asking for it: we honour the request rather than downgrade silently.
  const requested = requestedAssurance(input.acrValues, settings);
  if (requested !== undefined && requested > 1) reasons.set('acr_requested', requested);
  // Administrators: an authenticator app, never a code by email.
  if (settings.mfa.requiredForAdmins && input.account.roles.includes('admin')) reasons.set('admin_role', 3);
  return reasons;
}

export function mfaReasons(input: MfaInput, settings: MfaSettings): MfaReason[] {
  return [...mfaRequirements(input, settings).keys()];
}

/** The level the reasons need together (1: none). */
export function requiredAssurance(input: MfaInput, settings: MfaSettings): Assurance {
  return Math.max(1, ...mfaRequirements(input, settings).values()) as Assurance;
}

/** Two different kinds of factor make a multi-factor sign-in; two passwords would not. */
export function isMultiFactor(factors: readonly Factor[]): boolean {
  const kinds = new Set(factors.map((f) => (f === 'recovery' ? 'totp' : f)));
  return kinds.size >= 2;
}

/** The level these factors reach together. */
export function assuranceOf(factors: readonly Factor[]): Assurance {
  if (!isMultiFactor(factors)) return 1;
  return factors.some((f) => f === 'totp' || f === 'recovery') ? 3 : 2;
}

/** The level a session reached, from its `amr` (`otp` is an authenticator or recovery code). */
export function assuranceOfAmr(amr: readonly string[] | undefined): Assurance {
  if (!amr?.includes('mfa')) return 1;
  return amr.includes('otp') ? 3 : 2;
}

export function acrFor(factors: readonly Factor[], settings: Pick<MfaSettings, 'acr'>): string {
  const level = assuranceOf(factors);
  return level === 3 ? settings.acr.multiFactor : level === 2 ? settings.acr.emailSecondFactor : settings.acr.singleFactor;
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
    acr: acrFor(factors, settings),
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

/**
 * `required`: the level the sign-in must reach. Level 3 leaves only the authenticator app (or
 * setting one up); the email code and the password count for level 2 alone.
 */
export function secondFactorOptions(
  account: Pick<AccountView, 'totpEnabled' | 'hasPassword'>,
  done: readonly Factor[],
  settings: MfaSettings,
  required: Assurance = 2,
): SecondFactorOptions {
  if (account.totpEnabled) return { totp: true, email: false, password: false, enrol: false };
  if (required >= 3) return { totp: false, email: false, password: false, enrol: true };
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
export function clientFlag(client: unknown, name: 'require_mfa' | 'first_party' | 'dynamically_registered' | 'skip_pkce'): boolean {
  return typeof client === 'object' && client !== null && (client as Record<string, unknown>)[name] === true;
}

function clientRequiresMfa(ctx: KoaContextWithOIDC): boolean {
  return clientFlag(ctx.oidc.client, 'require_mfa');
}

function acrValuesOf(ctx: KoaContextWithOIDC): string[] {
  const raw = ctx.oidc.params?.acr_values;
  return typeof raw === 'string' ? raw.split(' ').filter(Boolean) : [];
}

/** The consent the sign-in asks for before it finishes (see `consentPreview`), as the provider's consent prompt words it. */
export interface ConsentPreview {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

/** Claims the provider never asks consent for (its consent prompt's op_claims_missing check). */
const CLAIMS_WITHOUT_CONSENT = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss']);

/**
 * The login prompt's `consent` detail: what the provider's consent prompt would find missing for
 * a grant that is still empty, computed from the same request values its checks read. Only for a
 * browser with no signed-in session (no grant to remember), a client that is not first party
 * (they get no consent page) and no `authorization_details` (asked for in the provider's own
 * consent step). NOTE: a preview, not a decision: the provider still runs every consent check on
 * the result, and anything the grant does not cover opens its consent prompt as before.
 */
function consentPreview(ctx: KoaContextWithOIDC): { consent?: ConsentPreview } {
  const { oidc } = ctx;
  if (oidc.session?.accountId || !oidc.client || clientFlag(oidc.client, 'first_party') || oidc.params?.authorization_details) return {};
  const missingOIDCScope = [...oidc.requestParamOIDCScopes];
  const missingOIDCClaims = [...oidc.requestParamClaims].filter((claim) => !CLAIMS_WITHOUT_CONSENT.has(claim));
  const missingResourceScopes: Record<string, string[]> = {};
  for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
    const available = (server as { scopes?: Set<string> }).scopes;
    const scopes = [...oidc.requestParamScopes].filter((scope) => available?.has(scope));
    if (scopes.length > 0) missingResourceScopes[indicator] = scopes;
  }
  const nothingMissing = missingOIDCScope.length === 0 && missingOIDCClaims.length === 0 && Object.keys(missingResourceScopes).length === 0;
  // The provider asks nothing then, except of a native client (its native_client_prompt check).
  if (nothingMissing && oidc.client.applicationType !== 'native') return {};
  return {
    consent: {
      ...(missingOIDCScope.length > 0 ? { missingOIDCScope } : {}),
      ...(missingOIDCClaims.length > 0 ? { missingOIDCClaims } : {}),
      ...(Object.keys(missingResourceScopes).length > 0 ? { missingResourceScopes } : {}),
    },
  };
}

/**
 * oidc-provider's default prompts (login, consent) with our `mfa` prompt between them. Its checks
 * run only for a session that already has an account; a session without one meets `login` first.
 */
export function createInteractionPolicy(settings: MfaSettings, signUp: Pick<Config['signUp'], 'mode'> = { mode: 'closed' }): interactionPolicy.DefaultPolicy {
  const { Prompt, Check, base } = interactionPolicy;
  const policy = base();

  // prompt=create (Initiating User Registration via OpenID Connect 1.0): listed in discovery's
  // prompt_values_supported while sign-up is open or by invitation. With SIGN_UP=closed it is
  // not offered, and the provider answers a request for it with `invalid_request` at the client
  // (§4: a prompt value the OP does not support). NOTE: the prompt has no checks of its own (the
  // library's would stay pending until a `create` result); it makes the login prompt run, and
  // the sign-in flow opens on the sign-up form (flow-store.ts). Signing up, or signing in
  // instead, ends with a `login` result, which settles it.
  if (signUp.mode !== 'closed') {
    const create = new Prompt({ name: 'create', requestable: true });
    create.checks.remove('create_prompt');
    policy.unshift(create);
    policy.get('login')?.checks.unshift(
      new Check('create_prompt', 'the client asked for the sign-up page', 'login_required', (ctx) =>
        ctx.oidc.prompts.has('create') && !ctx.oidc.result?.login ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
      ),
    );
  }

  // What the consent prompt would ask of a browser without a session (so without a grant): the
  // sign-in shows it as its own last step and finishes login and consent in one result.
  const login = policy.get('login');
  if (login) {
    const loginDetails = login.details;
    login.details = async (ctx) => ({ ...(await loginDetails(ctx)), ...consentPreview(ctx) });
  }
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
    // The session's enabled account (findAccount refuses disabled ones). A reason asks for more
    // only when the session's sign-in is below the level it needs: a password and an email code
    // satisfy require_mfa, never an administrator or acr_values=<multiFactor>.
    const account = sessionAccount(ctx);
    if (account && session?.accountId) {
      const reached = assuranceOfAmr(session.amr);
      const requirements = mfaRequirements({ account, clientRequiresMfa: clientRequiresMfa(ctx), acrValues: acrValuesOf(ctx) }, settings);
      for (const [reason, level] of requirements) if (level > reached) reasons.add(reason);
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
    check('admin_role', 'administrators sign in with an authenticator app'),
  );
  const consentIndex = policy.findIndex((p) => p.name === 'consent');
  policy.splice(consentIndex === -1 ? policy.length : consentIndex, 0, mfa);
  return policy;
}
