import Router from '@koa/router';
import { z } from 'zod';

import { safeText } from '../accounts/account.service.js';
import { accountActor } from '../audit/audit.service.js';
import { AppError } from '../http/app-error.js';
import { parseForm } from '../http/form-body.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { FactorRouteDeps } from './factor.routes.js';
import { createFactorFlow } from './factor.routes.js';
import type { InteractionState, Step, StepContext } from './interaction-steps.js';
import { createInteractionSteps, noStore, readProgress, tooManyAttempts } from './interaction-steps.js';
import { describeClaim, describeScope } from './scope-descriptions.js';

export interface InteractionRouterDeps extends FactorRouteDeps {
  limits: SignInLimits;
}

const loginForm = z.object({
  csrf: z.string(),
  email: safeText(254),
  password: z.string().max(1024).refine((s) => !s.includes('\u0000')),
});

export function createInteractionRouter(deps: InteractionRouterDeps): Router<InteractionState> {
  const { provider, accounts, limits, pages, csrf, config, logger, audit } = deps;
  const router = new Router<InteractionState>({ prefix: '/interaction' });
  const steps = createInteractionSteps({ provider, csrf });
  const { loadInteraction, requirePrompt, checkCsrf, finish } = steps;
  const factors = createFactorFlow(deps, steps);

  const renderLogin = async (ctx: StepContext, options: { email?: string | undefined; error?: string | undefined; status?: number }) => {
    const { uid } = ctx.state.interaction;
    await pages.render(
      ctx,
      'interactions/login',
      {
        title: 'Sign in',
        uid,
        client: ctx.state.client,
        action: `/interaction/${uid}/login`,
        emailCodeAction: `/interaction/${uid}/email-code`,
        abortAction: `/interaction/${uid}/abort`,
        csrf: csrf.issue(uid),
        email: options.email ?? '',
        error: options.error,
      },
      options.status ?? 200,
    );
  };

  const renderConsent = async (ctx: StepContext) => {
    const { interaction } = ctx.state;
    const details = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const accountId = interaction.session?.accountId;
    const account = accountId ? await accounts.findById(accountId) : undefined;
    if (!account) throw new AppError(400, 'interaction.no_account', 'Your session has ended. Go back to the application and sign in again.');
    const resourceScopes = Object.values(details.missingResourceScopes ?? {}).flat();
    await pages.render(ctx, 'interactions/consent', {
      title: 'Allow access',
      uid: interaction.uid,
      client: ctx.state.client,
      account: { email: account.email, name: account.name },
      scopes: [...new Set([...(details.missingOIDCScope ?? []), ...resourceScopes])].map(describeScope),
      claims: (details.missingOIDCClaims ?? []).map(describeClaim),
      action: `/interaction/${interaction.uid}/confirm`,
      abortAction: `/interaction/${interaction.uid}/abort`,
      csrf: csrf.issue(interaction.uid),
    });
  };

  factors.setLoginRenderer((ctx, options) => renderLogin(ctx, options));

  /**
   * A refused password sign-in in the audit log: against the account when the email names one,
   * anonymous (and without the address) when it does not. Only admins read the reason.
   */
  const auditPasswordFailure = async (ctx: StepContext, email: string, reason?: 'throttled' | 'throttled_ip') => {
    const account = await accounts.findByEmail(email);
    const why = reason ?? (!account ? 'unknown_account' : account.disabled ? 'account_disabled' : account.hasPassword ? 'wrong_password' : 'no_password');
    const actor = account ? accountActor(account) : undefined;
    await audit.record({ action: 'sign_in.password', outcome: 'failure', actor: actor ?? { type: 'anonymous' }, target: actor, clientId: String(ctx.state.interaction.params.client_id), reason: why });
  };

  const showPrompt: Step = async function showPrompt(ctx) {
    const { prompt } = ctx.state.interaction;
    if (prompt.name === 'login') {
      const progress = readProgress(ctx.state.interaction);
      if (progress?.step === 'email-code' && progress.email) {
        return factors.renderEmailCode(ctx, { purpose: 'sign-in', email: progress.email });
      }
      if (progress?.accountId) return factors.showSecondFactor(ctx);
      const hint = ctx.state.interaction.params.login_hint;
      const email = typeof hint === 'string' && hint.length <= 254 ? hint : '';
      return renderLogin(ctx, { email });
    }
    if (prompt.name === 'mfa') return factors.showSecondFactor(ctx);
    if (prompt.name === 'consent') return renderConsent(ctx);
    throw new AppError(400, 'interaction.unknown_prompt', 'This sign-in step is not supported.');
  };

  const verifyPassword: Step = async function verifyPassword(ctx) {
    const parsed = loginForm.safeParse(ctx.state.form);
    if (!parsed.success) {
      // Echo the email back without control characters (a NUL is not valid in an HTML page).
      // eslint-disable-next-line no-control-regex -- the point is to drop control characters
      const email = typeof ctx.state.form.email === 'string' ? ctx.state.form.email.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 254) : '';
      return renderLogin(ctx, { email, error: 'Enter your email address and password.', status: 400 });
    }
    const { email, password } = parsed.data;
    const log = ctx.state.log ?? logger;
    // NOTE: the attempt is reserved at both gates BEFORE the password is checked (and counted as
    // a failure until it succeeds), so however many requests race, at most the free attempts per
    // address reach argon2 (src/limits/attempt-limiter.ts). Known and unknown addresses alike.
    const ipGate = limits.signInFromIp(ctx.ip);
    const gate = await limits.limiter.begin([ipGate, limits.password(email)]);
    if (!gate.allowed) {
      const fromIp = gate.key === ipGate.key;
      log.info('sign-in delayed', { retryAfterSeconds: gate.retryAfterSeconds, limit: fromIp ? 'ip' : 'address', client: ctx.state.interaction.params.client_id });
      await auditPasswordFailure(ctx, email, fromIp ? 'throttled_ip' : 'throttled');
      ctx.set('Retry-After', String(gate.retryAfterSeconds));
      return renderLogin(ctx, { email, error: tooManyAttempts(fromIp, gate.retryAfterSeconds), status: 429 });
    }
    const result = await accounts.authenticate(email, password);
    if (!result.ok) {
      await gate.attempt.failed();
      log.info('sign-in failed', { reason: result.reason, client: ctx.state.interaction.params.client_id });
      await auditPasswordFailure(ctx, email);
      // One message for unknown email, wrong password and disabled account (no enumeration).
      return renderLogin(ctx, { email, error: 'Incorrect email or password.', status: 401 });
    }
    await gate.attempt.succeeded();
    log.info('password accepted', { accountId: result.account.id, client: ctx.state.interaction.params.client_id });
    await audit.record({ action: 'sign_in.password', outcome: 'success', actor: accountActor(result.account), target: accountActor(result.account), clientId: String(ctx.state.interaction.params.client_id) });
    // The policy decides whether a second factor follows (factor.routes.ts).
    await factors.advance(ctx, result.account.id, ['pwd']);
  };

  const grantConsent: Step = async function grantConsent(ctx) {
    const { interaction } = ctx.state;
    const accountId = interaction.session?.accountId;
    if (!accountId) throw new AppError(400, 'interaction.no_account', 'Your session has ended. Go back to the application and sign in again.');
    const details = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const clientId = String(interaction.params.client_id);
    const grant = interaction.grantId
      ? await provider.Grant.find(interaction.grantId)
      : new provider.Grant({ accountId, clientId });
    if (!grant) throw new AppError(400, 'interaction.grant_gone', 'This sign-in has expired. Go back to the application and try again.');
    if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    (ctx.state.log ?? logger).info('consent granted', { accountId, client: clientId });
    const scopes = [...(details.missingOIDCScope ?? []), ...Object.values(details.missingResourceScopes ?? {}).flat()];
    await audit.record({ action: 'consent.granted', outcome: 'success', actor: { type: 'account', id: accountId }, target: { type: 'client', id: clientId, label: ctx.state.client.name }, clientId, details: { scopes, claims: details.missingOIDCClaims ?? [] } });
    await finish(ctx, { consent: { grantId } });
  };

  const abort: Step = async function abort(ctx) {
    const { prompt, params, session } = ctx.state.interaction;
    (ctx.state.log ?? logger).info('interaction aborted', { prompt: prompt.name, client: params.client_id });
    if (prompt.name === 'consent' && session?.accountId) {
      const clientId = String(params.client_id);
      await audit.record({ action: 'consent.denied', outcome: 'success', actor: { type: 'account', id: session.accountId }, target: { type: 'client', id: clientId, label: ctx.state.client.name }, clientId });
    }
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' });
  };

  /** A fresh password sign-in: refused while a first factor is already done in this interaction. */
  const noProgress: Step = async function noProgress(ctx, next) {
    if (readProgress(ctx.state.interaction)?.accountId) {
      throw new AppError(400, 'interaction.wrong_step', 'This step of the sign-in is not the current one. Go back to the application and try again.');
    }
    await next();
  };

  const form = parseForm({ limit: config.formBodyLimit });
  // Every POST: parse (size-limited), load the interaction from its cookie, check the step, then CSRF.
  const post = (...route: Step[]): Step[] => {
    const [prompt, ...rest] = route as [Step, ...Step[]];
    return [noStore, form, loadInteraction, prompt, checkCsrf, ...rest];
  };

  router.get('/:uid', noStore, loadInteraction, showPrompt);
  router.post('/:uid/login', ...post(requirePrompt('login'), noProgress, verifyPassword));
  router.post('/:uid/confirm', ...post(requirePrompt('consent'), grantConsent));
  router.post('/:uid/abort', noStore, form, loadInteraction, checkCsrf, abort);
  factors.register(router, { post, login: requirePrompt('login'), loginOrMfa: requirePrompt('login', 'mfa') });
  return router;
}
