import type { AccountView } from '../accounts/account.service.js';
import type { Factor } from '../oidc/policy.js';
import type { SignInEvent, Transition } from './flow.js';
import type { KeptInput } from './flow-store.js';
import type { PageErrorCode } from './page-errors.js';
import type { SignInContext } from './sign-in-context.js';

/**
 * One way of proving something during the sign-in (a password, a code by email, an app, …), after
 * Ory Kratos's self-service strategies: its form schemas (zod), its verification and its page
 * (a view-model builder). A strategy never decides where the flow goes next: it reports an event
 * (`flow.advance`), and the pure transition in flow.ts decides.
 */
export interface SignInStrategy {
  /** Unique; also what `pageFor` (flow.ts) names for the steps whose page this strategy shows. */
  readonly id: string;
  /** Its form posts, under /interaction/:uid. */
  readonly routes: readonly StrategyRoute[];
  /** Renders this strategy's page for the current step (GET /interaction/:uid). */
  show(ctx: SignInContext): Promise<void>;
  /**
   * Runs when a transition lands on a step whose page is this strategy's (e.g. mailing the
   * second-factor code). Returns true when it answered the request itself; otherwise the router
   * redirects to the page of the current step.
   */
  enter?(ctx: SignInContext, flow: FlowActions): Promise<boolean>;
}

export interface StrategyRoute {
  /** Below /interaction/:uid, e.g. `/second-factor/totp`. */
  readonly path: string;
  /** The provider prompts it may run under (else 400 `interaction.wrong_step`, before CSRF). */
  readonly prompts: readonly ('login' | 'mfa')[];
  /**
   * Whether the router loads the account the flow names before `handle` (once; on
   * `ctx.state.account`). Routes that find the account by what the person typed say false.
   */
  readonly loadsAccount: boolean;
  /** Runs after the body is parsed, the interaction and client loaded and the CSRF token checked. */
  handle(ctx: SignInContext, flow: FlowActions): Promise<void>;
}

/** What the router gives a strategy's handler to move the flow on. */
export interface FlowActions {
  /**
   * Reports an event: the transition decides; the new state is persisted; then the provider hears
   * `login` (finish), or the new step's strategy `enter`s, or the browser goes to the current page.
   */
  advance(ctx: SignInContext, event: SignInEvent): Promise<void>;
  /** A first factor identified `account` (password, or a code by email). */
  identified(ctx: SignInContext, account: AccountView, factor: Factor): Promise<void>;
  /** Applies and persists an event without answering: for a strategy that renders the next page itself. */
  commit(ctx: SignInContext, event: SignInEvent, keep?: KeptInput): Promise<Exclude<Transition, { refused: string }>>;
  /** POST → redirect → GET of the current step's page. */
  showCurrentStep(ctx: SignInContext, query?: string): void;
  /**
   * Refuses a POST the post/redirect/get way: 303 to the current step's page with
   * `?error=<code>` (and `&wait=` when throttled); that GET shows the catalogue's message
   * (page-errors.ts) with its status (and Retry-After). Writes only when asked: `keep` (what the
   * page shows again, never in the URL) and `restart` (back to the first-factor page, for
   * refusals on that page while another step was current) persist the flow state.
   */
  fail(ctx: SignInContext, code: PageErrorCode, options?: FailOptions): Promise<void>;
}

export interface FailOptions {
  /** Seconds to wait (throttling): in the message and in Retry-After. */
  wait?: number | undefined;
  keep?: KeptInput;
  restart?: boolean;
  /** The page variant to come back to (`?method=recovery`; `?method=sign-up` from the login step). */
  method?: 'recovery' | 'sign-up';
}
