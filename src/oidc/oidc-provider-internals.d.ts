/**
 * The one internal module of oidc-provider we import (provider-keystore.ts): its per-instance state.
 * Untyped on purpose: provider-keystore.ts checks the shape it needs at start.
 */
declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  export default function instance(provider: object): unknown;
}
