import type { RouterContext, RouterMiddleware } from '@koa/router';

import type { AccountView } from '../accounts/account.service.js';
import type { FormFields } from '../http/form-body.js';
import type { Logger } from '../logging/logger.js';
import type { SignInState } from './flow.js';
import type { InteractionDetails, KeptInput } from './flow-store.js';
import type { PageError } from './page-errors.js';

export type { InteractionDetails } from './flow-store.js';

/** The client as the sign-in pages show it. */
export interface InteractionClient {
  name: string;
  logoUri?: string | undefined;
  uri?: string | undefined;
  policyUri?: string | undefined;
  tosUri?: string | undefined;
  /** The client's `require_mfa` metadata. */
  requiresMfa: boolean;
  /** Registered itself (RFC 7591): its name and logo are its own claims, reviewed by nobody. */
  registeredDynamically: boolean;
  /** Where the person will be sent back: an origin, or a private-use scheme such as `com.example.app:`. */
  returnTo?: string | undefined;
}

/** What the router loads once per request, before any strategy runs. */
export interface SignInRequestState {
  form: FormFields;
  interaction: InteractionDetails;
  client: InteractionClient;
  /** The flow state this request works on (at a step-up: with the session's account and factors). */
  flow: SignInState;
  /**
   * The account the flow (or, at consent and step-up, the session) names, loaded once; undefined
   * when none is named, the route does not need it, or it no longer exists.
   */
  account: AccountView | undefined;
  /** What the last refused POST kept for this page (post/redirect/get); read-only on a GET. */
  kept: KeptInput;
  /** On a GET: the refusal the query names (`?error=…`), shown with its status. */
  pageError: PageError | undefined;
  formActionOrigins: string[];
  requestId: string;
  log?: Logger;
}

export type SignInMiddleware = RouterMiddleware<SignInRequestState>;
export type SignInContext = RouterContext<SignInRequestState>;
