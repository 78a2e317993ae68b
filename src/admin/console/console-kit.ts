import type Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';

import type { AuditActor } from '../../audit/audit.service.js';
import type { Config } from '../../config/config.js';
import { AppError } from '../../http/app-error.js';
import { parseForm } from '../../http/form-body.js';
import type { FormFields } from '../../http/form-body.js';
import type { PageRenderer } from '../../http/render-page.js';
import type { CsrfTokens } from '../../interactions/csrf.js';
import type { Logger } from '../../logging/logger.js';
import type { FirstPartySignIn, SignedIn } from '../../oidc/first-party-sign-in.js';
import { ADMIN_BASE_PATH } from '../admin-client.js';

/**
 * What every console page is built from: the signed-in admin, CSRF, forms and rendering.
 * Page modules (client.pages.ts, user.pages.ts, …) register their routes with these steps.
 */

export interface ConsoleState {
  form: FormFields;
  admin: SignedIn;
  formActionOrigins: string[];
  log?: Logger;
}

export type ConsoleStep = RouterMiddleware<ConsoleState>;
export type ConsoleContext = RouterContext<ConsoleState>;
export type ConsoleRouter = Router<ConsoleState>;

/** The console's sections, for the navigation bar. */
export type ConsoleSection = 'clients' | 'users' | 'audit' | 'registration-tokens' | 'api-token';

export interface ConsoleKit {
  /** Loads the signed-in admin: sign-in if none, 403 page if not an admin, step-up if no second factor. */
  requireAdmin: ConsoleStep;
  /** Parses a url-encoded form (size-limited). */
  form: ConsoleStep;
  /** The form's CSRF token must be this session's. */
  checkCsrf: ConsoleStep;
  /** Every POST: [form, requireAdmin, checkCsrf]. */
  post: ConsoleStep[];
  render(ctx: ConsoleContext, view: string, section: ConsoleSection, locals: Record<string, unknown>, status?: number): Promise<void>;
  /** The audit actor for changes made through the console. */
  actor(ctx: ConsoleContext): AuditActor;
  /** 303 to a console path. */
  redirect(ctx: ConsoleContext, path: string): void;
}

export function createConsoleKit(deps: {
  config: Config;
  pages: PageRenderer;
  csrf: CsrfTokens;
  signIn: FirstPartySignIn;
}): ConsoleKit {
  const { config, pages, csrf, signIn } = deps;
  const csrfKey = (ctx: ConsoleContext) => `admin:${ctx.state.admin.sessionUid}`;

  const requireAdmin: ConsoleStep = async function requireAdmin(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    const current = await signIn.current(ctx);
    // No session, or one without a second factor (the console client requires one: signing in
    // again is a step-up that asks only for the missing factor).
    if (!current || !current.amr.includes('mfa')) {
      if (ctx.method !== 'GET') throw new AppError(401, 'admin.signed_out', 'Your admin session has ended. Sign in again.');
      ctx.status = 303;
      ctx.redirect(`${ADMIN_BASE_PATH}/sign-in`);
      return;
    }
    if (!current.account.roles.includes('admin')) {
      throw new AppError(403, 'admin.forbidden', 'This account is not an administrator. Sign in with an admin account to use the console.');
    }
    ctx.state.admin = current;
    ctx.state.formActionOrigins = [];
    await next();
  };

  const form = parseForm({ limit: config.formBodyLimit }) as ConsoleStep;

  const checkCsrf: ConsoleStep = async function checkCsrf(ctx, next) {
    if (!csrf.verify(csrfKey(ctx), ctx.state.form.csrf)) {
      throw new AppError(403, 'request.csrf', 'The form has expired or did not come from this site. Go back and try again.');
    }
    await next();
  };

  return {
    requireAdmin,
    form,
    checkCsrf,
    post: [form, requireAdmin, checkCsrf],
    async render(ctx, view, section, locals, status = 200) {
      await pages.render(
        ctx,
        view,
        {
          section,
          admin: { email: ctx.state.admin.account.email, name: ctx.state.admin.account.name, id: ctx.state.admin.account.id },
          csrf: csrf.issue(csrfKey(ctx)),
          signOutHref: '/session/end',
          ...locals,
        },
        status,
      );
    },
    actor(ctx) {
      return { type: 'account', id: ctx.state.admin.account.id, label: ctx.state.admin.account.email };
    },
    redirect(ctx, path) {
      ctx.status = 303;
      ctx.redirect(path.startsWith('/') ? path : `${ADMIN_BASE_PATH}/${path}`);
    },
  };
}
