/**
 * The sign-in, as one explicit flow (after Ory Kratos's self-service flows):
 *  - flow.ts: the typed state, the events, and the one pure `transition`;
 *  - strategies/: one per method (form schema, verification, page), listed in strategy-registry.ts;
 *  - sign-in.routes.ts: the one router (loads interaction, client and account once; dispatches).
 *
 * To add a strategy (say, sign-up):
 *  1. write `strategies/sign-up.strategy.ts` exporting `createSignUpStrategy(kit): SignInStrategy`
 *     with its `id`, its `routes` (path, prompts, `loadsAccount`, `handle`) and `show`;
 *  2. add it to SIGN_IN_STRATEGIES in strategy-registry.ts;
 *  3. if it has its own step, add the step to `SignInState` (flow.ts) and its stored form to
 *     flow-store.ts, the events it reports to `SignInEvent` and their case to `transition`, and
 *     the step's page to `pageFor`; then add rows to test/sign-in/transition.test.ts.
 * A strategy reports what it verified (`flow.advance(ctx, event)`); only `transition` decides what
 * comes next, and only it finishes a sign-in (the policy in src/oidc/policy.ts).
 *
 * Post/redirect/get: every POST under /interaction answers with a 303, so Back and Reload never
 * resend a form, and GETs never write.
 *  - Success: `flow.advance` / `flow.identified` (to the next page or back to the client), or
 *    `flow.showCurrentStep(ctx)`.
 *  - Refusal, in one line: `return flow.fail(ctx, 'wrong_password', { wait, keep, restart, method })`.
 *    It redirects to the step's page with `?error=<code>` (`&wait=<s>` when throttled). The GET
 *    shows the message of that code from page-errors.ts with its status (401, 429 + Retry-After,
 *    400 …); unknown codes are ignored, nothing typed is ever read back from the URL. What the
 *    page must show again goes in `keep` (persisted in the interaction by the POST, read by the
 *    GET as `ctx.state.kept`): the typed email, a sealed enrolment secret, the password policy's
 *    reason — never in the URL. `restart: true` returns to the first-factor page (a refusal on it
 *    while another step was current). A new strategy adds its codes to PAGE_ERRORS and renders
 *    `kit.pageError(ctx)?.message` in its `show`; the router applies the status.
 *  - Thrown AppErrors (CSRF, wrong step, unknown interaction) stay error pages: there is no
 *    step page to go back to.
 */
export { createSignInRouter } from './sign-in.routes.js';
export type { SignInDeps } from './sign-in-kit.js';
export { SIGN_IN_STRATEGIES } from './strategy-registry.js';
export type { SignInStrategy, StrategyRoute, FlowActions } from './strategy.js';
export type { SignInState, SignInEvent, FlowContext, Transition } from './flow.js';
export { transition } from './flow.js';
