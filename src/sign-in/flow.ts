import type { AccountView } from '../accounts/account.service.js';
import type { Assurance, Factor, MfaReason, MfaSettings } from '../oidc/policy.js';
import { assuranceOf, loginResult, mfaReasons, requiredAssurance, secondFactorOptions } from '../oidc/policy.js';

/**
 * The sign-in as one explicit flow: a typed state, the events strategies report, and ONE pure
 * transition `(state, event, context) → next state | finish with login`. No I/O here: the router
 * loads what the context needs, persists the state in the interaction and talks to the provider.
 *
 * ```
 *                     restart (any step, login prompt)
 *                 ┌──────────────────────────────────────────────┐
 *                 ▼                                              │
 *           ┌──────────┐ code_sent  ┌────────────┐               │
 *  login ──►│ identify │──────────►│ email-code │──┐ code_sent   │
 *  prompt   └──────────┘           └────────────┘◄─┘ (resend)    │
 *                 │ identified(pwd)      │ identified(email)     │
 *                 ▼                      ▼                       │
 *           ┌────────────── evaluate ─────────────────┐          │
 *           │ assurance(factors) < required           │──► second-factor ──verified──► evaluate
 *           │ reached, passwordResetRequired          │──► new-password ──password_changed──► finish
 *           │ reached                                 │──► FINISH (login result to the provider)
 *           └─────────────────────────────────────────┘
 *  second-factor ──totp_enrolled──► recovery-codes ──recovery_codes_saved──► evaluate
 *  second-factor ──recovery_code_used{left}──► recovery-used ──recovery_notice_seen──► evaluate
 *  mfa prompt (step-up): starts in second-factor with the session's account and factors.
 *
 *  password reset ("Forgot password?" on the first-factor page):
 *  identify / email-code ──reset_started──► reset-request ──reset_code_sent──► reset-code
 *  reset-code ──reset_code_sent (resend)──► reset-code ──reset_verified──► reset-password
 *  reset-password ──password_reset──► evaluate with factors [email]
 *  Sign-up ("Create account" on the login page, ?method=sign-up; or prompt=create, which starts here):
 *           ┌─────────┐ sign_up_started ┌──────────────┐ email_verified(pwd+email) ──► evaluate
 *           │ sign-up │───────────────►│ verify-email │
 *           └─────────┘◄───────────────└──────────────┘──┐ sign_up_started (resend: same flow)
 *                ▲      change_address (keeps name)  ▲    │
 *                └───────────────────────────────────┘◄───┘
 * ```
 */

/** What the policy needs to know of the account a step works on. */
export type FlowAccount = Pick<AccountView, 'id' | 'totpEnabled' | 'hasPassword' | 'roles' | 'passwordResetRequired'>;

/**
 * How far this sign-in has come. Persisted in the interaction (never the form or the URL), so
 * the account a later factor is checked for comes from the server side only.
 * To add a step: add a variant here (and to `flowStateSchema` in flow-store.ts), and say in
 * `pageFor` which strategy shows it.
 */
export type SignInState =
  /** Nothing done yet: the first-factor page. */
  | { step: 'identify' }
  /** A sign-in code was sent to `email` (passwordless first factor). */
  | { step: 'email-code'; email: string }
  /** A first factor identified the account; the policy wants another. */
  | { step: 'second-factor'; accountId: string; factors: Factor[] }
  /** An authenticator app was just enrolled: its recovery codes were shown once. */
  | { step: 'recovery-codes'; accountId: string; factors: Factor[] }
  /**
   * A recovery code was just spent (counted in `factors`): the page says how many are `left` and
   * offers to set up the app again, before the sign-in finishes.
   */
  | { step: 'recovery-used'; accountId: string; factors: Factor[]; left: number }
  /**
   * Every factor is done, and the client asks for consent this browser never gave (a browser
   * without a session: the login prompt's consent preview): the consent page is the sign-in's
   * last step, and login and consent reach the provider together, as one interaction result.
   * `login` is the result the factors earned; `shown`, the account as the page names it (read
   * when the factor was checked).
   */
  | { step: 'consent'; accountId: string; factors: Factor[]; login: LoginResult; shown: { email: string; name?: string | undefined } }
  /** Every factor is done, but an administrator asked for a new password first. */
  | { step: 'new-password'; accountId: string; factors: Factor[] }
  /** "Forgot password?": the form asking where to send a reset code (`email`: what was typed). */
  | { step: 'reset-request'; email: string }
  /** A reset code was sent for reset flow `flowId` (src/accounts/password-reset.service.ts). */
  | { step: 'reset-code'; email: string; flowId: string }
  /**
   * The reset code was right: `grant` lets this interaction set the account's new password once.
   * NOTE: no `accountId` yet: nothing is proven to the sign-in until the password is set.
   */
  | { step: 'reset-password'; email: string; grant: string }
  /** The sign-up form (`name` kept when the person goes back to use another address). */
  | { step: 'sign-up'; name?: string | undefined }
  /**
   * A sign-up was started: a code went to `email` (or, for a taken address, the owner was told;
   * the same state either way). `flowId` names the sign-up service's flow, kept server-side only.
   */
  | { step: 'verify-email'; flowId: string; email: string; name?: string | undefined };

export type Step = SignInState['step'];
export type AccountStep = Extract<SignInState, { accountId: string }>;

/** What a strategy reports after doing its work (verifying a factor, sending a code, …). */
export type SignInEvent =
  /** A sign-in code went out (or was recorded for an unknown address: same answer). */
  | { type: 'code_sent'; email: string }
  /** A first factor proved who this is. */
  | { type: 'identified'; account: FlowAccount; factor: Factor }
  /** A further factor for the state's account. */
  | { type: 'verified'; factor: Factor }
  /** An authenticator app was enrolled (its code checked). */
  | { type: 'totp_enrolled' }
  /** "Continue" on the recovery-codes page. */
  | { type: 'recovery_codes_saved' }
  /** A recovery code was right (and is spent); `left` codes remain. */
  | { type: 'recovery_code_used'; left: number }
  /** "Continue" on the page that said how many recovery codes are left. */
  | { type: 'recovery_notice_seen' }
  /** The administrator-required new password was set. */
  | { type: 'password_changed' }
  /** "Use another account": forget this interaction's progress. */
  | { type: 'restart' }
  /** "Forgot password?" on the first-factor page. */
  | { type: 'reset_started'; email: string }
  /** A reset code went out (or was recorded for an unknown address: same answer). */
  | { type: 'reset_code_sent'; email: string; flowId: string }
  /** The reset code was right: the service gave a grant to set the new password. */
  | { type: 'reset_verified'; grant: string }
  /** The new password was set with the grant (every old session and token revoked). */
  | { type: 'password_reset'; account: FlowAccount }
  /** The sign-up form was accepted (the same answer for a free and a taken address). */
  | { type: 'sign_up_started'; flowId: string; email: string; name?: string | undefined }
  /** "Use a different address" on the code page: back to the form, the name kept. */
  | { type: 'change_address' }
  /**
   * The code from the mail proved the inbox of the new account, whose password was chosen in
   * this same interaction: the same two proofs as a password then an email code (level 2).
   */
  | { type: 'email_verified'; account: FlowAccount };

export interface FlowContext {
  /** The provider's prompt: `login` (sign in) or `mfa` (step-up of an existing session). */
  prompt: string;
  /** The account the state (or the session, at a step-up) names, as loaded for this request. */
  account: FlowAccount | undefined;
  clientRequiresMfa: boolean;
  /** The request's `acr_values`, split. */
  acrValues: readonly string[];
  settings: MfaSettings;
  /** Milliseconds since the epoch: the login result's `ts`. */
  now: number;
}

export type LoginResult = ReturnType<typeof loginResult>;

export type Transition =
  | { state: SignInState; reasons?: MfaReason[] }
  | { finish: LoginResult }
  /** The event does not belong to this step (a stale page, another tab, a forged POST). */
  | { refused: 'wrong_step' };

/** Factors, each once, in order of first appearance. */
export function uniqueFactors(...lists: readonly (readonly Factor[])[]): Factor[] {
  return [...new Set(lists.flat())];
}

const hasAccount = (state: SignInState): state is AccountStep => 'accountId' in state;

/**
 * The state a request works on. At a step-up (`mfa` prompt) the account is the session's and
 * the factors include what the session already proved, so a step-up never ends with fewer.
 */
export function effectiveState(prompt: string, persisted: SignInState, session: { accountId?: string | undefined; factors: readonly Factor[] }): SignInState {
  if (prompt !== 'mfa') return persisted;
  const done = 'factors' in persisted ? persisted.factors : [];
  if (persisted.step === 'recovery-used') return { ...persisted, accountId: session.accountId ?? '', factors: uniqueFactors(session.factors, done) };
  const step = persisted.step === 'new-password' || persisted.step === 'recovery-codes' ? persisted.step : 'second-factor';
  // NOTE: an `mfa` prompt always has a session account; without one, '' names no account and the
  // router answers `interaction.no_account`.
  return { step, accountId: session.accountId ?? '', factors: uniqueFactors(session.factors, done) };
}

const policyInput = (account: FlowAccount, context: FlowContext) => ({ account, clientRequiresMfa: context.clientRequiresMfa, acrValues: context.acrValues });

/** The level this sign-in must reach, for this account (src/oidc/policy.ts). */
export function requiredFor(account: FlowAccount, context: FlowContext): Assurance {
  return requiredAssurance(policyInput(account, context), context.settings);
}

/**
 * After a verified factor: finish when the factors reach the level asked for, otherwise ask for
 * another. NOTE: the only place a `finish` comes from, so no route can skip a factor.
 */
function evaluate(account: FlowAccount, factors: Factor[], context: FlowContext, options: { passwordChanged?: boolean } = {}): Transition {
  const input = policyInput(account, context);
  if (assuranceOf(factors) >= requiredAssurance(input, context.settings)) {
    // Every factor is done, but an administrator asked for a new password: the provider hears
    // `login` only after it is set.
    if (account.passwordResetRequired && !options.passwordChanged) return { state: { step: 'new-password', accountId: account.id, factors } };
    return { finish: loginResult(account.id, factors, context.settings, context.now) };
  }
  return { state: { step: 'second-factor', accountId: account.id, factors }, reasons: mfaReasons(input, context.settings) };
}

const WRONG_STEP = { refused: 'wrong_step' } as const;

export function transition(state: SignInState, event: SignInEvent, context: FlowContext): Transition {
  switch (event.type) {
    case 'code_sent':
      // Asking for a sign-in code starts the sign-in over with that address.
      return context.prompt === 'login' ? { state: { step: 'email-code', email: event.email } } : WRONG_STEP;
    case 'identified':
      if (context.prompt !== 'login' || hasAccount(state)) return WRONG_STEP;
      return evaluate(event.account, [event.factor], context);
    case 'restart':
      return context.prompt === 'login' ? { state: { step: 'identify' } } : WRONG_STEP;
    case 'reset_started':
      // Only before anyone is identified: a person half-way through a second factor has proven
      // their password already.
      return context.prompt === 'login' && !hasAccount(state) ? { state: { step: 'reset-request', email: event.email } } : WRONG_STEP;
    case 'reset_code_sent':
      return context.prompt === 'login' && (state.step === 'reset-request' || state.step === 'reset-code')
        ? { state: { step: 'reset-code', email: event.email, flowId: event.flowId } }
        : WRONG_STEP;
    case 'reset_verified':
      return context.prompt === 'login' && state.step === 'reset-code' ? { state: { step: 'reset-password', email: state.email, grant: event.grant } } : WRONG_STEP;
    case 'password_reset':
      if (context.prompt !== 'login' || state.step !== 'reset-password') return WRONG_STEP;
      // NOTE: a reset counts as ONE factor, `email`: the code proved the mailbox, nothing more. The
      // new password proves nothing on top (whoever reads the mailbox just chose it), so it is not
      // `pwd`: counting both would make a mailbox alone a two-factor sign-in. An account with an
      // authenticator app still needs it (level 3), and a client that wants two factors gets a
      // second one the policy offers (the app, else the password, else enrolment).
      return evaluate(event.account, ['email'], context);
    case 'sign_up_started':
      if (context.prompt !== 'login' || hasAccount(state)) return WRONG_STEP;
      return { state: { step: 'verify-email', flowId: event.flowId, email: event.email, name: event.name } };
    case 'change_address':
      return context.prompt === 'login' && state.step === 'verify-email' ? { state: { step: 'sign-up', name: state.name } } : WRONG_STEP;
    case 'email_verified':
      // NOTE: amr pwd + email (level 2): the person typed the password in this interaction and
      // read the inbox. A request for more (an app) continues to the second factor as any sign-in.
      if (context.prompt !== 'login' || state.step !== 'verify-email') return WRONG_STEP;
      return evaluate(event.account, ['pwd', 'email'], context);
    default:
      break;
  }
  // The remaining events are about the state's account.
  const { account } = context;
  if (!hasAccount(state) || !account || account.id !== state.accountId) return WRONG_STEP;
  switch (event.type) {
    case 'verified':
      return evaluate(account, uniqueFactors(state.factors, [event.factor]), context);
    case 'totp_enrolled':
      return { state: { step: 'recovery-codes', accountId: account.id, factors: uniqueFactors(state.factors, ['totp']) } };
    case 'recovery_codes_saved':
      return state.step === 'recovery-codes' ? evaluate(account, state.factors, context) : WRONG_STEP;
    case 'recovery_code_used':
      // NOTE: not a finish yet, even when the factors are enough: the person first hears how
      // many codes are left. The code is spent and counted either way.
      return state.step === 'second-factor'
        ? { state: { step: 'recovery-used', accountId: account.id, factors: uniqueFactors(state.factors, ['recovery']), left: Math.max(0, Math.trunc(event.left)) } }
        : WRONG_STEP;
    case 'recovery_notice_seen':
      return state.step === 'recovery-used' ? evaluate(account, state.factors, context) : WRONG_STEP;
    case 'password_changed':
      return state.step === 'new-password' ? evaluate(account, state.factors, context, { passwordChanged: true }) : WRONG_STEP;
  }
}

/** The ways to complete the second factor, each served by a strategy. */
export type SecondFactorMethod = 'totp' | 'recovery-code' | 'email-code' | 'password' | 'totp-enrolment';

/**
 * Which second factor this account gives now: the app (or one of its recovery codes, when the
 * person asks with `?method=recovery`) when enrolled; else, where level 2 will do, an email code
 * after a password, or the password after an email code; else enrolment of an app.
 */
export function secondFactorMethod(account: FlowAccount, factors: readonly Factor[], context: FlowContext, requested?: unknown): SecondFactorMethod {
  const options = secondFactorOptions(account, factors, context.settings, requiredFor(account, context));
  if (options.totp) return requested === 'recovery' ? 'recovery-code' : 'totp';
  if (options.email) return 'email-code';
  if (options.password) return 'password';
  return 'totp-enrolment';
}

/**
 * The strategy whose page the current step shows (GET /interaction/:uid). `requested` is the
 * `method` query parameter (only "recovery" means anything).
 */
export function pageFor(state: SignInState, context: FlowContext, requested?: unknown): string {
  switch (state.step) {
    case 'identify':
      // The login page's "Create account" link (a GET: nothing is written until the form is sent).
      return requested === 'sign-up' ? 'sign-up' : 'password';
    case 'email-code':
      return 'email-code';
    case 'recovery-codes':
      return 'totp-enrolment';
    case 'recovery-used':
      return 'recovery-code';
    case 'new-password':
      return 'new-password';
    case 'reset-request':
      return 'reset-request';
    case 'reset-code':
      return 'reset-code';
    case 'reset-password':
      return 'reset-password';
    case 'sign-up':
      return 'sign-up';
    case 'verify-email':
      return 'verify-email';
    case 'second-factor':
      return context.account ? secondFactorMethod(context.account, state.factors, context, requested) : 'password';
    case 'consent':
      // Shown by the router (the consent page is not a strategy's).
      return 'consent';
  }
}
