import { codeForm } from '../forms.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

/**
 * The page shared by the authenticator app and its recovery codes (`mode`), each linking to the
 * other.
 */
export async function renderTotpPage(kit: SignInKit, ctx: SignInContext, mode: 'totp' | 'recovery') {
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
    error: kit.pageError(ctx)?.message,
  };
  await kit.deps.pages.render(ctx, 'interactions/totp', view);
}

/** A code from the account's authenticator app (TOTP), once per time step. */
export function createTotpStrategy(kit: SignInKit): SignInStrategy {
  const { totp } = kit.deps;
  return {
    id: 'totp',
    show: (ctx) => renderTotpPage(kit, ctx, 'totp'),
    routes: [
      {
        path: '/second-factor/totp',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'totp');
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'app_code_required');
          return kit.guarded(ctx, { kind: 'totp', account, auditAction: 'mfa.totp' }, (code, wait) => flow.fail(ctx, code, { wait }), async (attempt) => {
            const result = await totp.verify(account.id, parsed.data.code);
            if (!result.ok) {
              await attempt.failed();
              kit.log(ctx).info('second factor failed', { accountId: account.id, method: 'totp', reason: result.reason });
              await kit.auditFactor(ctx, 'mfa.totp', account, 'failure', { reason: `code_${result.reason}` });
              return flow.fail(ctx, result.reason === 'replayed' ? 'app_code_replayed' : 'app_code_invalid');
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
