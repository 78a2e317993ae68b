import { defaults } from '../../config/defaults.js';
import type { AuditActor } from '../audit/audit.service.js';

/**
 * The authority behind an admin change: who acts, and which management API scopes they hold.
 * The admin services (client.service.ts, registration-token.service.ts,
 * src/accounts/user-admin.service.ts) take one with every change, so that one rule holds on
 * every surface: nobody gives a client, a registration token or a user more than they hold
 * themselves, and giving a client management API scopes is its own permission
 * (`admin:clients:grant`).
 *
 * - The management API: the scopes of the bearer token still in force (ApiPrincipal.scopes,
 *   src/admin/api/api-auth.ts), whoever the token acts for: an administrator who minted a token
 *   with fewer scopes gave the token less than they hold themselves.
 * - The admin console: an administrator (signed in with a second factor, admin role checked on
 *   every request) holds everything; so does the CLI, which has the database itself.
 *
 * NOTE: the safe choice is the default. A call that says nothing about its authority is the
 * system holding nothing (NO_AUTHORITY): ordinary changes go through, privileged ones are
 * refused. The surfaces that do hold everything say so with fullAuthority().
 */

/** Gives clients management API scopes (only ones the caller holds itself) or first-party status. */
export const CLIENTS_GRANT_SCOPE = 'admin:clients:grant';

/** Every management API scope (config.adminApi.scopes is this list: config.ts). */
export const MANAGEMENT_SCOPES: readonly string[] = defaults.adminScopes;

export interface AdminAuthority {
  /** Who the audit log names for the change. */
  readonly actor: AuditActor;
  /**
   * The management API scopes the caller holds: `all` for a surface with the power of the
   * database itself (the CLI, an administrator in the console, the development seed), otherwise
   * exactly these.
   */
  readonly holds: 'all' | ReadonlySet<string>;
}

/** What a call that does not say who acts gets: the system, holding no management API scope. */
export const NO_AUTHORITY: AdminAuthority = Object.freeze({ actor: Object.freeze({ type: 'system' as const }), holds: new Set<string>() });

/**
 * Everything: only for surfaces that have it anyway (the CLI and the seed have the database; an
 * administrator in the console holds the admin role, which gives every scope).
 */
export function fullAuthority(actor: AuditActor): AdminAuthority {
  return { actor, holds: 'all' };
}

/** Exactly these scopes (a management API token's). */
export function scopedAuthority(actor: AuditActor, scopes: Iterable<string>): AdminAuthority {
  return { actor, holds: new Set(scopes) };
}

export function holdsScope(authority: AdminAuthority, scope: string): boolean {
  return authority.holds === 'all' || authority.holds.has(scope);
}

/** Those of `scopes` the authority does not hold, each once, in the order given. */
export function scopesNotHeld(authority: AdminAuthority, scopes: Iterable<string>): string[] {
  return [...new Set(scopes)].filter((scope) => !holdsScope(authority, scope));
}

/** Every management API scope the authority lacks: empty for an administrator's full power. */
export function managementScopesNotHeld(authority: AdminAuthority, all: readonly string[] = MANAGEMENT_SCOPES): string[] {
  return scopesNotHeld(authority, all);
}
