import { codeForm } from '../forms.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

/**
 * The page shared by the authenticator app and its recovery codes (`mode`), each linking to the
 * other.
 */
export async function renderTotpPage(kit: SignInKit, ctx: SignInContext, mode: 'totp' | 'recovery', error?: string, status = 200) {
  const { account, stepUp } = kit.requireAccount(ctx);
  const base = kit.page(ctx);
  const view = {
    ...base,
    title: mode === 'totp' ? 'Two-step verification' : 'Use a recovery code',
    mode,
    stepUp,
    email: account.email,
    action: `/interaction/${base.uid}/second-factor/${mode}`,
    switchHref: `/interaction/${base.uid}${mode === 'totp' ? '?method=recovery' : ''}`,
    error,
  };
  await kit.deps.pages.render(ctx, 'interactions/totp', view, status);
}

/** A code from the account's authenticator app (TOTP), once per time step. */
export function createTotpStrategy(kit: SignInKit): SignInStrategy {
  const { totp } = kit.deps;
  const render = (ctx: SignInContext, error?: string, status?: number) => renderTotpPage(kit, ctx, 'totp', error, status);
  return {
    id: 'totp',
    show: (ctx) => render(ctx),
    routes: [
      {
        path: '/second-factor/totp',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'totp');
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return render(ctx, 'Enter the 6-digit code from your authenticator app.', 400);
          return kit.guarded(ctx, { kind: 'totp', account, auditAction: 'mfa.totp' }, (message) => render(ctx, message, 429), async (attempt) => {
            const result = await totp.verify(account.id, parsed.data.code);
            if (!result.ok) {
              await attempt.failed();
              kit.log(ctx).info('second factor failed', { accountId: account.id, method: 'totp', reason: result.reason });
              await kit.auditFactor(ctx, 'mfa.totp', account, 'failure', { reason: `code_${result.reason}` });
              const message = result.reason === 'replayed' ? 'That code was already used. Wait for the next code in your app.' : 'That code is not right. Check your authenticator app and try again.';
              return render(ctx, message, 401);
            }
            await attempt.succeeded();
            kit.log(ctx).info('second factor succeeded', { accountId: account.id, method: 'totp' });
            await kit.auditFactor(ctx, 'mfa.totp', account, 'success');
            return flow.advance(ctx, { type: 'verified', factor: 'totp' });
          });
        },
      },
    ],
  };
}
