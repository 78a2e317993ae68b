import Router from '@koa/router';
import type { RouterMiddleware } from '@koa/router';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { z } from 'zod';

import type { AccountService } from '../accounts/account.service.js';
import { safeText } from '../accounts/account.service.js';
import type { SignInThrottle } from '../accounts/sign-in-throttle.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { parseForm } from '../http/form-body.js';
import type { FormFields } from '../http/form-body.js';
import type { PageRenderer } from '../http/render-page.js';
import type { Logger } from '../logging/logger.js';
import type { CsrfTokens } from './csrf.js';
import { describeClaim, describeScope } from './scope-descriptions.js';

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

interface InteractionState {
  form: FormFields;
  interaction: InteractionDetails;
  client: { name: string; logoUri?: string | undefined; uri?: string | undefined; policyUri?: string | undefined; tosUri?: string | undefined };
  formActionOrigins: string[];
  requestId: string;
  log?: Logger;
}

type Step = RouterMiddleware<InteractionState>;

export interface InteractionRouterDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  signInThrottle: SignInThrottle;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
}

const uidSchema = z.string().regex(/^[A-Za-z0-9_-]{10,64}$/);

const loginForm = z.object({
  csrf: z.string(),
  email: safeText(254),
  password: z.string().max(1024).refine((s) => !s.includes('\u0000')),
});

function describeWait(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/** Where the browser may end up after a form POST on these pages (see security-headers.ts). */
function redirectTarget(params: Record<string, unknown>): string | undefined {
  const uri = typeof params.redirect_uri === 'string' ? URL.parse(params.redirect_uri) : null;
  if (!uri) return undefined;
  return uri.protocol === 'http:' || uri.protocol === 'https:' ? uri.origin : uri.protocol;
}

export function createInteractionRouter(deps: InteractionRouterDeps): Router<InteractionState> {
  const { provider, accounts, signInThrottle, pages, csrf, config, logger } = deps;
  const router = new Router<InteractionState>({ prefix: '/interaction' });

  const noStore: Step = async function noStore(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  /**
   * Loads the interaction from the browser's interaction cookie (never from the URL alone)
   * and checks that the URL names the same one.
   */
  const loadInteraction: Step = async function loadInteraction(ctx, next) {
    const uid = ctx.params.uid;
    if (!uidSchema.safeParse(uid).success) throw new AppError(404, 'interaction.not_found', 'This sign-in does not exist or has expired.');
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== uid) {
      throw new AppError(400, 'interaction.mismatch', 'This sign-in was started in another tab or has expired. Go back to the application and try again.');
    }
    const client = await provider.Client.find(String(interaction.params.client_id));
    if (!client) throw new AppError(400, 'interaction.client_gone', 'The application that sent you here no longer exists.');
    ctx.state.interaction = interaction;
    ctx.state.client = {
      name: client.clientName ?? client.clientId,
      logoUri: client.logoUri ?? undefined,
      uri: client.clientUri ?? undefined,
      policyUri: client.policyUri ?? undefined,
      tosUri: client.tosUri ?? undefined,
    };
    const target = redirectTarget(interaction.params);
    ctx.state.formActionOrigins = target ? [target] : [];
    await next();
  };

  const requirePrompt = (name: 'login' | 'consent'): Step =>
    async function assertPrompt(ctx, next) {
      if (ctx.state.interaction.prompt.name !== name) {
        throw new AppError(400, 'interaction.wrong_step', 'This step of the sign-in is not the current one. Go back to the application and try again.');
      }
      await next();
    };

  const checkCsrf: Step = async function checkCsrf(ctx, next) {
    if (!csrf.verify(ctx.state.interaction.uid, ctx.state.form.csrf)) {
      throw new AppError(403, 'request.csrf', 'The form has expired or did not come from this site. Go back and try again.');
    }
    await next();
  };

  const renderLogin = async (ctx: Parameters<Step>[0], options: { email: string; error?: string; status?: number }) => {
    const { uid } = ctx.state.interaction;
    await pages.render(
      ctx,
      'interactions/login',
      {
        title: 'Sign in',
        uid,
        client: ctx.state.client,
        action: `/interaction/${uid}/login`,
        abortAction: `/interaction/${uid}/abort`,
        csrf: csrf.issue(uid),
        email: options.email,
        error: options.error,
      },
      options.status ?? 200,
    );
  };

  const renderConsent = async (ctx: Parameters<Step>[0]) => {
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

  const showPrompt: Step = async function showPrompt(ctx) {
    const { prompt } = ctx.state.interaction;
    if (prompt.name === 'login') {
      const hint = ctx.state.interaction.params.login_hint;
      const email = typeof hint === 'string' && hint.length <= 254 ? hint : '';
      return renderLogin(ctx, { email });
    }
    if (prompt.name === 'consent') return renderConsent(ctx);
    throw new AppError(400, 'interaction.unknown_prompt', 'This sign-in step is not supported.');
  };

  const finish = async (ctx: Parameters<Step>[0], result: InteractionResults) => {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(redirectTo);
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
    const gate = await signInThrottle.check(email);
    if (!gate.allowed) {
      // Checked before the password, for known and unknown emails alike (sign-in-throttle.ts).
      log.info('sign-in delayed', { retryAfterSeconds: gate.retryAfterSeconds, client: ctx.state.interaction.params.client_id });
      ctx.set('Retry-After', String(gate.retryAfterSeconds));
      return renderLogin(ctx, {
        email,
        error: `Too many failed attempts. Wait ${describeWait(gate.retryAfterSeconds)}, then try again.`,
        status: 429,
      });
    }
    const result = await accounts.authenticate(email, password);
    if (!result.ok) {
      await signInThrottle.recordFailure(email);
      log.info('sign-in failed', { reason: result.reason, client: ctx.state.interaction.params.client_id });
      // One message for unknown email, wrong password and disabled account (no enumeration).
      return renderLogin(ctx, { email, error: 'Incorrect email or password.', status: 401 });
    }
    await signInThrottle.recordSuccess(email);
    log.info('sign-in succeeded', { accountId: result.account.id, client: ctx.state.interaction.params.client_id });
    await finish(ctx, { login: { accountId: result.account.id, amr: ['pwd'], remember: true } });
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
    await finish(ctx, { consent: { grantId } });
  };

  const abort: Step = async function abort(ctx) {
    (ctx.state.log ?? logger).info('interaction aborted', { prompt: ctx.state.interaction.prompt.name, client: ctx.state.interaction.params.client_id });
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' });
  };

  const form = parseForm({ limit: config.formBodyLimit });

  router.get('/:uid', noStore, loadInteraction, showPrompt);
  router.post('/:uid/login', noStore, form, loadInteraction, requirePrompt('login'), checkCsrf, verifyPassword);
  router.post('/:uid/confirm', noStore, form, loadInteraction, requirePrompt('consent'), checkCsrf, grantConsent);
  router.post('/:uid/abort', noStore, form, loadInteraction, checkCsrf, abort);
  return router;
}
