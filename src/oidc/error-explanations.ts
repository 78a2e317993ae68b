/**
 * What a person sees when the provider refuses a browser request it cannot send back to the app
 * (RFC 6749 §4.1.2.1: no redirect to an untrusted redirect_uri, an unknown client, a request the
 * app built wrongly). The OAuth error code and the provider's description are for the app's
 * developer; the person gets plain words and a way out.
 */

export interface ErrorExplanation {
  /** Plain words: what happened, from the person's side. */
  message: string;
  /** The provider's own description, shown folded under "Details for the app's developer". */
  developerDetail: string | undefined;
  /** Where the person can go from here. */
  wayBack: { href: string; label: string } | undefined;
}

export interface ErroredClient {
  name: string | undefined;
  /** `client_uri` from the client's registered metadata (OpenID Connect Dynamic Registration §2). */
  homeUri: string | undefined;
}

const APP = 'The app that sent you here';
const EXPIRED = 'This sign-in has expired or was started in another browser. Go back to the app and sign in again.';

/** By OAuth error code (RFC 6749 §4.1.2.1 and §5.2, OpenID Connect Core §3.1.2.6). */
const MESSAGES: Record<string, (app: string) => string> = {
  invalid_redirect_uri: (app) =>
    `${app} asked to send you back to an address it has not registered here, so for your safety you were not sent there. The app needs fixing; you have done nothing wrong.`,
  redirect_uri_mismatch: (app) =>
    `${app} asked to send you back to an address it has not registered here, so for your safety you were not sent there. The app needs fixing; you have done nothing wrong.`,
  invalid_client: () =>
    'The app that sent you here is not known to this sign-in service. It may have been removed, or the link you followed is wrong or out of date.',
  unauthorized_client: (app) => `${app} is not allowed to sign you in this way. The app needs fixing; you have done nothing wrong.`,
  unsupported_response_type: (app) => `${app} asked to sign you in in a way this service does not offer. The app needs fixing; you have done nothing wrong.`,
  invalid_scope: (app) => `${app} asked for access this service does not give. The app needs fixing; you have done nothing wrong.`,
  invalid_request: (app) => `${app} sent a sign-in request this service cannot accept. The app needs fixing; you have done nothing wrong.`,
  invalid_request_object: (app) => `${app} sent a sign-in request this service cannot accept. The app needs fixing; you have done nothing wrong.`,
  invalid_request_uri: (app) => `${app} sent a sign-in request that has expired or cannot be read. Go back to the app and start again.`,
  request_not_supported: (app) => `${app} sent a sign-in request this service cannot accept. The app needs fixing; you have done nothing wrong.`,
  request_uri_not_supported: (app) => `${app} sent a sign-in request this service cannot accept. The app needs fixing; you have done nothing wrong.`,
  invalid_grant: () => 'This sign-in has expired or was already used. Go back to the app and sign in again.',
  access_denied: () => 'The sign-in was cancelled. Go back to the app if you want to try again.',
  temporarily_unavailable: () => 'The sign-in service is busy or briefly unavailable. Wait a moment and try again.',
  server_error: () => 'Something went wrong on our side, not something you did. Try again in a moment.',
};

/** Only http(s) URLs become links: client metadata must never yield `javascript:` links. */
function webUrl(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const url = URL.parse(value);
  return url && (url.protocol === 'https:' || url.protocol === 'http:') ? url.href : undefined;
}

/**
 * The page text for a provider error. `signInAgainUrl` is where a person can start over when the
 * app's home is not known (the account pages, which start a fresh sign-in).
 */
export function explainProviderError(
  out: { error?: unknown; error_description?: unknown },
  client: ErroredClient | undefined,
  signInAgainUrl: string,
  /** The provider's SessionNotFound (its code is a generic invalid_request): a stale or foreign sign-in. */
  expired = false,
): ErrorExplanation {
  const code = typeof out.error === 'string' ? out.error : 'server_error';
  const description = typeof out.error_description === 'string' && out.error_description.trim() ? out.error_description : undefined;
  // NOTE: the message never names the client: anyone can build a link with a real client_id and a
  // bad redirect_uri, and the page must not blame the app for it. Its registered home is safe to offer.
  const message = expired ? EXPIRED : (MESSAGES[code] ?? MESSAGES.invalid_request!)(APP);
  const home = code === 'invalid_client' ? undefined : webUrl(client?.homeUri);
  return {
    message,
    developerDetail: description,
    wayBack: home
      ? { href: home, label: client?.name ? `Go to ${client.name}` : 'Go to the app' }
      : { href: signInAgainUrl, label: 'Sign in again' },
  };
}
