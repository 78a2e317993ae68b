import { z } from 'zod';

import { safeText } from '../../accounts/account.service.js';
import type { AccountView } from '../../accounts/account.service.js';
import { accountActor } from '../../audit/audit.service.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

/** The first-factor form: email and password. */
const loginForm = z.object({
  csrf: z.string(),
  email: safeText(254),
  password: z.string().max(1024).refine((s) => !s.includes('\u0000')),
});

/** The password as a second step, after a passwordless first one: the account is known. */
const passwordForm = z.object({
  csrf: z.string(),
  password: z.string().min(1).max(1024).refine((s) => !s.includes('\u0000')),
});

/**
 * The password: the first-factor page (which also offers a code by email), and the password as a
 * second factor for accounts that signed in with a code.
 */
export function createPasswordStrategy(kit: SignInKit): SignInStrategy {
  const { accounts, audit, limits, pages } = kit.deps;

  const { renderLogin } = kit;

  const renderPassword = async (ctx: SignInContext) => {
    const { account, stepUp } = kit.requireAccount(ctx);
    const base = kit.page(ctx);
    const error = kit.pageError(ctx)?.message;
    await pages.render(ctx, 'interactions/password', { ...base, title: 'Enter your password', stepUp, email: account.email, action: `/interaction/${base.uid}/second-factor/password`, error });
  };

  /**
   * A refused password sign-in in the audit log (in the background, batched): against the account when the email names one,
   * anonymous (and without the address) when it does not. Only admins read the reason. `known`:
   * the account authenticate() already read for this address (so it is not read twice).
   */
  const auditPasswordFailure = async (ctx: SignInContext, email: string, reason?: 'throttled' | 'throttled_ip', known?: { account: AccountView | undefined }) => {
    const account = known ? known.account : await accounts.findByEmail(email);
    const why = reason ?? (!account ? 'unknown_account' : account.disabled ? 'account_disabled' : account.hasPassword ? 'wrong_password' : 'no_password');
    const actor = account ? accountActor(account) : undefined;
    audit.recordInBackground({ action: 'sign_in.password', outcome: 'failure', actor: actor ?? { type: 'anonymous' }, target: actor, clientId: kit.clientId(ctx), reason: why });
  };

  return {
    id: 'password',
    async show(ctx) {
      if (ctx.state.flow.step === 'second-factor') return renderPassword(ctx);
      return renderLogin(ctx);
    },
    routes: [
      {
        path: '/login',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          // A fresh password sign-in: refused while a first factor is already done in this interaction.
          kit.requireStep(ctx, 'identify', 'email-code');
          const parsed = loginForm.safeParse(ctx.state.form);
          if (!parsed.success) {
            // Echo the email back without control characters (a NUL is not valid in an HTML page).
            // eslint-disable-next-line no-control-regex -- the point is to drop control characters
            const email = typeof ctx.state.form.email === 'string' ? ctx.state.form.email.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 254) : '';
            return flow.fail(ctx, 'missing_credentials', { restart: true, keep: { email: email || undefined } });
          }
          const { email, password } = parsed.data;
          const log = kit.log(ctx);
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
            return flow.fail(ctx, fromIp ? 'throttled_ip' : 'throttled', { wait: gate.retryAfterSeconds, restart: true, keep: { email } });
          }
          let known: { account: AccountView | undefined } | undefined;
          const result = await accounts.authenticate(email, password, (account) => {
            known = { account };
          });
          if (!result.ok) {
            await gate.attempt.failed();
            log.info('sign-in failed', { reason: result.reason, client: ctx.state.interaction.params.client_id });
            await auditPasswordFailure(ctx, email, undefined, known);
            // One message for unknown email, wrong password and disabled account (no enumeration).
            return flow.fail(ctx, 'wrong_password', { restart: true, keep: { email } });
          }
          await gate.attempt.succeeded();
          log.info('password accepted', { accountId: result.account.id, client: ctx.state.interaction.params.client_id });
          // NOTE: recorded in the background, batched with other events (audit.service.ts), like the
          // provider's own: nothing decides on it within this request, and whoever lists events
          // (the account centre, the admin console) flushes the batch first.
          audit.recordInBackground({ action: 'sign_in.password', outcome: 'success', actor: accountActor(result.account), target: accountActor(result.account), clientId: kit.clientId(ctx) });
          // The policy decides whether a second factor follows (flow.ts).
          return flow.identified(ctx, result.account, 'pwd');
        },
      },
      {
        path: '/second-factor/password',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'password');
          const parsed = passwordForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'password_required');
          return kit.guarded(ctx, { kind: 'password', account, auditAction: 'mfa.password' }, (code, wait) => flow.fail(ctx, code, { wait }), async (attempt) => {
            if (!(await accounts.verifyPassword(account.id, parsed.data.password))) {
              await attempt.failed();
              kit.log(ctx).info('second factor failed', { accountId: account.id, method: 'password' });
              await kit.auditFactor(ctx, 'mfa.password', account, 'failure', { reason: 'wrong_password' });
              return flow.fail(ctx, 'password_wrong');
            }
            await attempt.succeeded();
            kit.log(ctx).info('second factor succeeded', { accountId: account.id, method: 'password' });
            await kit.auditFactor(ctx, 'mfa.password', account, 'success');
            return flow.advance(ctx, { type: 'verified', factor: 'pwd' });
          });
        },
      },
    ],
  };
}
