import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';

import type { PasswordPolicy } from '../accounts/password-policy.js';
import type { PasswordResetService } from '../accounts/password-reset.service.js';
import { selfServiceLinks } from '../accounts/self-service-links.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { refuseCrossSiteWrites } from '../http/fetch-metadata.js';
import { parseForm } from '../http/form-body.js';
import type { PageRenderer } from '../http/render-page.js';
import type { Logger } from '../logging/logger.js';
import type { CsrfTokens } from '../sign-in/csrf.js';
import { describeWait } from '../sign-in/messages.js';
import type { NewPasswordErrors } from '../sign-in/strategies/reset-password.strategy.js';
import { completeProblems, newPasswordProblems, passwordRules } from '../sign-in/strategies/reset-password.strategy.js';

export interface PasswordResetPageDeps {
  config: Config;
  passwordReset: PasswordResetService;
  passwordPolicy: PasswordPolicy;
  csrf: CsrfTokens;
  pages: PageRenderer;
  logger: Logger;
}

/** A reset link's token, or (after a refused password) the grant it was exchanged for: 256 bits, base64url. */
const secretSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/);

/** What the form carries besides the password: exactly one of the two secrets. */
const secretFields = z.union([
  z.object({ token: secretSchema, grant: z.undefined() }).transform((f) => ({ kind: 'token' as const, value: f.token })),
  z.object({ grant: secretSchema, token: z.undefined() }).transform((f) => ({ kind: 'grant' as const, value: f.grant })),
]);
type Secret = z.infer<typeof secretFields>;

const PATH = '/password-reset';
/** The GET pages a POST redirects to (post/redirect/get): nothing secret in either URL. */
const DONE_PATH = `${PATH}/done`;
const INVALID_PATH = `${PATH}/invalid`;

/**
 * The page behind a reset mail's link (`/password-reset?token=…`), for whoever opens it, in any
 * browser, with no sign-in in progress (and for the link an administrator sends).
 *
 * - GET only shows the form (nothing is written: a mail scanner that opens the link spends
 *   nothing); the token travels in a hidden field.
 * - POST redeems the token and sets the password, then redirects (303) to a "password changed"
 *   page; an invalid, used or expired link redirects to the page saying so. A password the policy
 *   refuses keeps the reset going: the token is spent by then, so the page carries the grant it
 *   was exchanged for. That refusal (and the others that show the form again) is rendered in
 *   answer to the POST: post/redirect/get would have to put the token or the grant in the URL of
 *   the GET (there is no interaction or session here to keep it in), where it would end up in the
 *   history and in logs. Reloading that page asks to resend the form, which is harmless: the
 *   secret it carries is the one the page already holds.
 * - CSRF: there is no interaction or session to bind a token to, so the form's token is bound to
 *   the link's secret (HMAC, as the sign-in's are bound to their interaction): only a page made
 *   for that secret can post it, and whoever holds the secret could reset the password anyway.
 *   Beside it, cross-site POSTs are refused before the body is read (Fetch Metadata).
 * - An invalid, used and expired link get one page, which says the same for all three.
 * Every page: `Cache-Control: no-store` and `Referrer-Policy: no-referrer` (the URL holds a secret).
 */
export function createPasswordResetRouter(deps: PasswordResetPageDeps): Router {
  const { config, passwordReset, passwordPolicy, csrf, pages, logger } = deps;
  const links = selfServiceLinks(config.issuer);
  const router = new Router();
  const csrfKey = (secret: Secret) => `password-reset:${secret.kind}:${secret.value}`;
  const log = (ctx: Context) => (ctx.state.log as Logger | undefined) ?? logger;

  const privatePage: Middleware = async function privatePage(ctx, next) {
    if (!config.passwordReset.enabled) throw new AppError('not_found');
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Referrer-Policy', 'no-referrer');
    await next();
  };

  const renderForm = (ctx: Context, secret: Secret, errors: NewPasswordErrors = {}, status = 200) =>
    pages.render(
      ctx,
      'password-reset/form',
      {
        title: 'Choose a new password',
        action: PATH,
        csrf: csrf.issue(csrfKey(secret)),
        secretName: secret.kind,
        secret: secret.value,
        minLength: passwordPolicy.minLength,
        maxLength: passwordPolicy.maxLength,
        rules: passwordRules(passwordPolicy),
        errors,
      },
      status,
    );

  /** Invalid, used or expired: one page, the same words (nothing tells the cases apart). */
  const renderInvalid = (ctx: Context, status = 400) =>
    pages.render(ctx, 'password-reset/invalid', { title: 'This link no longer works', signInUrl: links.signIn }, status);

  /** A link that no longer works: post/redirect/get to the page that says so (nothing secret in its URL). */
  const redirectInvalid = (ctx: Context) => {
    ctx.status = 303;
    ctx.redirect(INVALID_PATH);
  };

  /** Every refusal of the POST goes through here (the form again is rendered: see above). */
  const refuse = (ctx: Context, secret: Secret, problem: { errors?: NewPasswordErrors; status: number; invalidLink?: boolean }) =>
    problem.invalidLink ? redirectInvalid(ctx) : renderForm(ctx, secret, problem.errors, problem.status);

  router.get(PATH, privatePage, async function showResetForm(ctx) {
    const token = secretSchema.safeParse(ctx.query.token);
    if (ctx.query.token === undefined) {
      return pages.render(ctx, 'password-reset/start', { title: 'Reset your password', signInUrl: links.signIn });
    }
    if (!token.success) return renderInvalid(ctx);
    return renderForm(ctx, { kind: 'token', value: token.data });
  });

  router.get(DONE_PATH, privatePage, async function showResetDone(ctx) {
    await pages.render(ctx, 'password-reset/done', { title: 'Your password was changed', signInUrl: links.signIn });
  });

  router.get(INVALID_PATH, privatePage, async function showResetInvalid(ctx) {
    await renderInvalid(ctx);
  });

  const checkCsrf: Middleware = async function checkResetCsrf(ctx, next) {
    const form = ctx.state.form as Record<string, string>;
    const secret = secretFields.safeParse({ token: form.token, grant: form.grant });
    if (!secret.success) return renderInvalid(ctx);
    if (!csrf.verify(csrfKey(secret.data), form.csrf)) throw new AppError('request.csrf');
    ctx.state.resetSecret = secret.data;
    await next();
  };

  router.post(
    PATH,
    privatePage,
    refuseCrossSiteWrites({ issuer: config.issuer, prefixes: [PATH] }),
    parseForm({ limit: config.formBodyLimit }),
    checkCsrf,
    async function resetPassword(ctx) {
      const form = ctx.state.form as Record<string, string>;
      let secret = ctx.state.resetSecret as Secret;
      const problems = newPasswordProblems(passwordPolicy, form);
      if (problems) return refuse(ctx, secret, { errors: problems, status: 400 });
      if (secret.kind === 'token') {
        const verified = await passwordReset.verifyToken({ token: secret.value, ip: ctx.ip });
        if (!verified.ok && verified.reason === 'throttled') {
          ctx.set('Retry-After', String(verified.retryAfterSeconds));
          return refuse(ctx, secret, { errors: { form: `Too many tries. Wait ${describeWait(verified.retryAfterSeconds)}, then try again.` }, status: 429 });
        }
        if (!verified.ok) return refuse(ctx, secret, { status: 400, invalidLink: true });
        secret = { kind: 'grant', value: verified.grant };
      }
      const result = await passwordReset.complete({ grant: secret.value, newPassword: form.password ?? '' });
      if (!result.ok) return refuse(ctx, secret, { errors: completeProblems(result), status: 400, invalidLink: result.reason === 'invalid_grant' });
      log(ctx).info('password reset by link', { accountId: result.account.id });
      ctx.status = 303;
      ctx.redirect(DONE_PATH);
    },
  );
  return router;
}
