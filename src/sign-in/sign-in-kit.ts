import type Provider from 'oidc-provider';

import type { AccountNotices } from '../accounts/account-notices.js';
import type { AccountService, AccountView } from '../accounts/account.service.js';
import type { KnownBrowserService } from '../accounts/known-browser.service.js';
import type { EmailCodeService } from '../accounts/email-code.service.js';
import type { PasswordPolicy } from '../accounts/password-policy.js';
import type { PasswordResetService } from '../accounts/password-reset.service.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditDetails, AuditOutcome, AuditService } from '../audit/audit.service.js';
import type { AuditAction } from '../audit/audit-actions.js';
import { accountActor } from '../audit/audit.service.js';
import type { ApiResourceService } from '../resources/api-resource.service.js';
import type { Config } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { AppError } from '../http/app-error.js';
import type { PageRenderer } from '../http/render-page.js';
import type { Attempt, Gate } from '../limits/attempt-limiter.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { Mailer, MailTemplate } from '../mail/mailer.js';
import type { InvitationService } from '../invitations/invitation.service.js';
import type { SignUpService } from '../accounts/sign-up.service.js';
import type { MailOutbox } from '../mail/outbox.service.js';
import type { CsrfTokens } from './csrf.js';
import { signUpAccess } from './sign-up-invitation.js';
import type { AccountStep, FlowContext, SecondFactorMethod, Step } from './flow.js';
import { secondFactorMethod } from './flow.js';
import type { SignInContext } from './sign-in-context.js';

/** What the sign-in needs from the core. */
export interface SignInDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  emailCodes: EmailCodeService;
  totp: TotpService;
  limits: SignInLimits;
  mailer: Mailer;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  audit: AuditService;
  passwordReset: PasswordResetService;
  signUp: SignUpService;
  invitations: InvitationService;
  secretBox: SecretBox;
  passwordPolicy: PasswordPolicy;
  outbox: MailOutbox;
  /** Notice mails (recovery code used, new sign-in, password and app changes during a sign-in). */
  notices: AccountNotices;
  /** The browsers each account signed in from (NOTIFY_NEW_SIGN_IN). */
  knownBrowsers: KnownBrowserService;
  /** The API resources, for the consent page's names and scope descriptions. */
  resources: Pick<ApiResourceService, 'find'>;
}

/** The gate a check is counted at, besides the client IP's: the factor's own. */
export type GateKind = 'password' | 'email-code' | 'totp' | 'recovery' | 'enrol';

export function acrValuesOf(params: Record<string, unknown>): string[] {
  return typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
}

/**
 * The helpers every strategy shares: the flow context, step checks, limits, audit, mail and the
 * fields every page has. Built once from the core; holds no request state.
 */
export function createSignInKit(deps: SignInDeps) {
  const { config, limits, outbox, csrf, logger, audit } = deps;
  const log = (ctx: SignInContext) => ctx.state.log ?? logger;
  const clientId = (ctx: SignInContext) => String(ctx.state.interaction.params.client_id);

  /** What the pure transition needs to know of this request. */
  const flowContext = (ctx: SignInContext): FlowContext => ({
    prompt: ctx.state.interaction.prompt.name,
    account: ctx.state.account,
    clientRequiresMfa: ctx.state.client.requiresMfa,
    acrValues: acrValuesOf(ctx.state.interaction.params),
    settings: config,
    now: Date.now(),
  });

  /** The fields every sign-in page has. */
  const page = (ctx: SignInContext) => {
    const { uid } = ctx.state.interaction;
    return { uid, client: ctx.state.client, csrf: csrf.issue(uid), abortAction: `/interaction/${uid}/abort`, restartAction: `/interaction/${uid}/restart` };
  };

  /** The refusal the GET shows (post/redirect/get; see page-errors.ts), if any. */
  const pageError = (ctx: SignInContext) => ctx.state.pageError;

  /**
   * The first-factor page (step `identify`): the password form, and the form asking for a code
   * by email. The address is the one a refused POST kept, else the client's `login_hint`.
   */
  const renderLogin = async (ctx: SignInContext) => {
    const { uid, client, csrf: token, abortAction } = page(ctx);
    const hint = ctx.state.interaction.params.login_hint;
    const error = pageError(ctx);
    const view = {
      title: 'Sign in',
      uid,
      client,
      action: `/interaction/${uid}/login`,
      emailCodeAction: `/interaction/${uid}/email-code`,
      // "Forgot password?" submits the same form, so the address typed so far comes along.
      resetAction: config.passwordReset.enabled ? `/interaction/${uid}/reset` : undefined,
      abortAction,
      csrf: token,
      email: ctx.state.kept.email ?? (typeof hint === 'string' && hint.length <= 254 ? hint : ''),
      error: error?.message,
      // "Create account": open sign-up, or an invitation this request carries (a GET, writes nothing).
      signUpHref: (await signUpAccess(deps, ctx.state.interaction.params)).allowed ? `/interaction/${uid}?method=sign-up` : undefined,
    };
    await deps.pages.render(ctx, 'interactions/login', view);
  };

  const wrongStep = () => new AppError('interaction.wrong_step');

  /** The current step must be one of `steps`. */
  const requireStep = <S extends Step>(ctx: SignInContext, ...steps: S[]) => {
    const { flow } = ctx.state;
    if (!(steps as Step[]).includes(flow.step)) throw wrongStep();
    return flow as Extract<typeof flow, { step: S }>;
  };

  /** A step that names an account (a second factor, step-up, …), and that account, usable. */
  const requireAccount = (ctx: SignInContext): { flow: AccountStep; account: AccountView; stepUp: boolean } => {
    const { flow, account } = ctx.state;
    if (!('accountId' in flow)) throw wrongStep();
    if (!account || account.disabled) throw new AppError('interaction.no_account');
    return { flow, account, stepUp: ctx.state.interaction.prompt.name === 'mfa' };
  };

  /** As requireAccount, and `method` must be the second factor this account gives now. */
  const requireMethod = (ctx: SignInContext, method: SecondFactorMethod) => {
    const context = requireAccount(ctx);
    if (secondFactorMethod(context.account, context.flow.factors, flowContext(ctx), method === 'recovery-code' ? 'recovery' : undefined) !== method) throw wrongStep();
    return context;
  };

  /** One factor check in the audit log, against the account it was for (never the code itself). */
  const auditFactor = (ctx: SignInContext, action: AuditAction, account: { id: string; email?: string }, outcome: AuditOutcome, extra: { reason?: string; details?: AuditDetails } = {}) => {
    const actor = account.email ? accountActor({ id: account.id, email: account.email }) : ({ type: 'account', id: account.id } as const);
    return audit.record({ action, outcome, actor, target: actor, clientId: clientId(ctx), ...extra });
  };

  /**
   * The gates a check passes: the client IP's sign-in failures, and the factor's own counter.
   * NOTE: one counter per factor, so that guessing one (say, email codes, which anyone who knows
   * an address can ask for) never delays the owner's others (the authenticator app). Email codes
   * and passwords are counted per address, known or not, so a delay says nothing about accounts.
   */
  const gatesFor = (ctx: SignInContext, kind: GateKind, account: { id?: string | undefined; email: string }): Gate[] => {
    const ip = limits.signInFromIp(ctx.ip);
    if (kind === 'email-code') return [ip, limits.emailCode(account.email)];
    if (kind === 'password') return [ip, limits.password(account.email)];
    if (!account.id) throw new Error(`a ${kind} check needs an account`);
    return [ip, limits.factor(account.id, kind === 'recovery' ? 'recovery' : 'totp')];
  };

  /**
   * Runs one guarded check: reserved at the client IP's gate and the factor's own before it runs
   * (src/limits), refused with a wait after repeated failures.
   */
  const guarded = async (
    ctx: SignInContext,
    check: { kind: GateKind; account: { id?: string | undefined; email: string }; auditAction: AuditAction },
    onRefused: (code: 'throttled' | 'throttled_ip' | 'code_throttled', wait: number) => Promise<void>,
    verify: (attempt: Attempt) => Promise<void>,
  ) => {
    const gates = gatesFor(ctx, check.kind, check.account);
    const verdict = await limits.limiter.begin(gates);
    if (!verdict.allowed) {
      const fromIp = verdict.key === gates[0]?.key;
      log(ctx).info('second factor delayed', { accountId: check.account.id, method: methodLabel(check.kind), limit: fromIp ? 'ip' : 'factor', retryAfterSeconds: verdict.retryAfterSeconds });
      const reason = fromIp ? 'throttled_ip' : 'throttled';
      await (check.account.id
        ? auditFactor(ctx, check.auditAction, { id: check.account.id }, 'failure', { reason })
        : audit.record({ action: check.auditAction, outcome: 'failure', actor: { type: 'anonymous' }, clientId: clientId(ctx), reason }));
      ctx.set('Retry-After', String(verdict.retryAfterSeconds));
      return onRefused(fromIp ? 'throttled_ip' : check.kind === 'password' ? 'throttled' : 'code_throttled', verdict.retryAfterSeconds);
    }
    return verify(verdict.attempt);
  };

  /**
   * Reserves the sending of one code (counted once `failed()` is called, released otherwise), or
   * says how long to wait and why: from this IP, to this address, to this address from this IP.
   * The same for known and unknown addresses.
   */
  const beginSending = async (ctx: SignInContext, email: string) => {
    const gates = [limits.codeSendsFromIp(ctx.ip), limits.codesToAddress(email), limits.codesToAddressFromIp(email, ctx.ip)];
    const verdict = await limits.limiter.begin(gates);
    if (verdict.allowed) return verdict;
    ctx.set('Retry-After', String(verdict.retryAfterSeconds));
    const fromIp = verdict.key === gates[0]?.key;
    return { allowed: false as const, retryAfterSeconds: verdict.retryAfterSeconds, reason: fromIp ? ('throttled_ip' as const) : ('throttled_address' as const) };
  };

  /**
   * Mails a code through the outbox, urgently: sent within the request when SMTP answers; when it
   * does not, the mail stays queued and goes out when SMTP is back, until `expiresAt` (the code's
   * expiry: a late code is useless). Returns whether it was handed to SMTP now. The outbox logs
   * delivery failures itself, without the code.
   */
  const mailCode = async (ctx: SignInContext, to: string, template: MailTemplate, locals: Record<string, unknown>, expiresAt?: Date): Promise<boolean> => {
    try {
      const queued = await outbox.enqueueTemplate(to, template, { productName: config.productName, email: to, ...locals }, { urgent: true, ...(expiresAt ? { expiresAt } : {}) });
      if (!queued.sent) log(ctx).info('code mail queued for later delivery', { template, client: ctx.state.interaction.params.client_id });
      return queued.sent;
    } catch (err) {
      // Not even queued (the database failed): name the error, never the code.
      log(ctx).warn('code mail not queued', { template, error: (err as Error).name, reason: (err as Error).message, client: ctx.state.interaction.params.client_id });
      return false;
    }
  };

  return { deps, config, log, clientId, flowContext, page, pageError, renderLogin, requireStep, requireAccount, requireMethod, auditFactor, guarded, beginSending, mailCode };
}

/** The `method` earlier versions logged for each gate kind. */
function methodLabel(kind: GateKind): string {
  return kind === 'email-code' ? 'email' : kind;
}

export type SignInKit = ReturnType<typeof createSignInKit>;
