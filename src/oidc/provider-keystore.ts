import type Provider from 'oidc-provider';
// NOTE: oidc-provider's per-instance state (its keystore, the JWKS document it serves) is reachable
// only through this internal module; the package has no exports map, so the path resolves. The
// version is pinned exactly, and assertKeystoreSwappable fails the start if the shape changes.
import internalsOf from 'oidc-provider/lib/helpers/weak_cache.js';

import type { PrivateJwk } from './keys.js';
import { publicJwk } from './keys.js';

/**
 * Switching the provider's signing keys in place, with no restart and no new Provider.
 *
 * oidc-provider builds its keystore once, from `jwks`, in the constructor; nothing public changes
 * it later. But it reads that keystore on every use: an ID token (and a JWT access token) is
 * signed with the first key of the keystore that fits the algorithm
 * (`keystore.selectForSign({ alg })`, a stable sort on equal scores), an `id_token_hint` is checked
 * against the keystore, and the `jwks` endpoint serves the instance's `jwks` document as it is at
 * that request. The keystore is a plain KeyStore with `clear()` and `add()`, so replacing its
 * contents and the served document in one synchronous step switches every later request at once;
 * a request that already picked its key finishes with it. Everything else wired to the provider
 * (event listeners, the interaction helpers, the adapter, the Client class patches) keeps the one
 * instance it holds.
 *
 * The keys passed must be what the constructor would have accepted (our own RS256/ES256 keys,
 * `kid`, `alg` and `use: 'sig'` set), in keystore order: the signer of each algorithm first.
 */

interface KeyStoreLike {
  clear(): void;
  add(key: unknown): void;
  [Symbol.iterator](): Iterator<{ kid?: string }>;
}

interface ProviderInternals {
  keystore: KeyStoreLike;
  jwks: { keys: unknown[] };
}

function internals(provider: Provider): ProviderInternals {
  const found = internalsOf(provider) as Partial<ProviderInternals> | undefined;
  const keystore = found?.keystore;
  if (
    !found ||
    !keystore ||
    typeof keystore.clear !== 'function' ||
    typeof keystore.add !== 'function' ||
    typeof keystore[Symbol.iterator] !== 'function' ||
    !found.jwks ||
    !Array.isArray(found.jwks.keys)
  ) {
    throw new Error('this oidc-provider version keeps its keystore elsewhere: signing key rotation (provider-keystore.ts) needs updating');
  }
  return found as ProviderInternals;
}

/** At start: fails loudly if this oidc-provider cannot have its keys switched (rather than at the first rotation). */
export function assertKeystoreSwappable(provider: Provider): void {
  internals(provider);
}

/** The kids in the provider's keystore, in order (the first of each algorithm signs). */
export function keystoreKids(provider: Provider): string[] {
  return [...internals(provider).keystore].map((key) => key.kid ?? '');
}

/** Replaces the provider's keys and the JWKS it serves, atomically for every later request. */
export function replaceProviderKeys(provider: Provider, keys: readonly PrivateJwk[]): void {
  const target = internals(provider);
  // Everything is built before anything changes: no request can see a half-filled keystore.
  const privateKeys = keys.map((key) => structuredClone(key));
  const document = {
    keys: keys.map((key) => {
      const { kty, use, kid, alg, crv, e, n, x, y } = publicJwk(key);
      // The members the provider itself publishes (initialize_keystore.js), undefined ones dropped by JSON.
      return { kty, use, kid, alg, crv, e, n, x, y };
    }),
  };
  target.keystore.clear();
  for (const key of privateKeys) target.keystore.add(key);
  target.jwks = document;
}
