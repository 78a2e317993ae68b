import { createHash, timingSafeEqual } from 'node:crypto';

import type Provider from 'oidc-provider';

/**
 * Client secret rotation with a grace period: after an admin rotates a secret
 * (ClientService.rotateSecret), the previous one keeps working until it expires, so that every
 * instance of the relying party can switch over without an outage.
 *
 * oidc-provider checks client_secret_basic and client_secret_post through
 * `Client.prototype.compareClientSecret(actual)`, which it awaits (lib/shared/client_auth.js);
 * we wrap it: the current secret first, then the previous one while it is valid.
 *
 * NOTE: the provider caches Client instances (an LRU in lib/models/client.js, `static find`), but
 * keyed by a hash of the metadata the adapter returns, and it asks the adapter on every request.
 * The adapter answers from the node's client cache, which every change drops on every node within
 * a second (src/clients/client-cache.ts); an update or a rotation changes that metadata (the
 * current secret is part of it), so the next request builds a new Client; a deleted client is not
 * found at all. The previous secret is looked up per comparison (from the same cache entry while
 * it is trusted), and only when the current one did not match, so its expiry is exact.
 */

export interface PreviousSecrets {
  /** The previous secret while it is still valid, else undefined. */
  previousSecret(clientId: string): Promise<string | undefined>;
}

/** Equal-time comparison of strings of any length: their SHA-256 digests have the same length. */
function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export function installClientSecretRotation(provider: Provider, secrets: PreviousSecrets): void {
  // The Client class is made per Provider instance: patching its prototype touches no other provider.
  const prototype = provider.Client.prototype;
  const compareCurrent = prototype.compareClientSecret;
  prototype.compareClientSecret = async function compareClientSecret(actual: string): Promise<boolean> {
    if (await compareCurrent.call(this, actual)) return true;
    const previous = await secrets.previousSecret(this.clientId);
    return previous !== undefined && secretsEqual(previous, actual);
  };
}
