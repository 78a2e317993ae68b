import { ClientValidationError } from '../clients/client-input.js';
import type { ApiResourceService } from '../resources/api-resource.service.js';

/**
 * A client may name only API resources that are registered: the console, the management API
 * and the command line check `allowedResources` (and so `defaultResource`, which must be one of
 * them) against the resource store before the client service stores anything. One `list()` of
 * the store (a handful of APIs, at most MAX_LISTED) answers for every identifier at once.
 *
 * NOTE: the check and the client's write are two steps: a resource deleted in between stays
 * listed on the client, where the provider refuses it (invalid_target) as it does for any
 * resource deleted later. Nothing is granted by a stale identifier.
 */

/** Per-field messages for identifiers that are not registered APIs; empty when all are. */
export async function unknownResourceFields(
  resources: Pick<ApiResourceService, 'list'>,
  input: { allowedResources?: unknown; defaultResource?: unknown },
): Promise<Record<string, string>> {
  const named = (Array.isArray(input.allowedResources) ? input.allowedResources : []).filter((r): r is string => typeof r === 'string');
  const fallback = typeof input.defaultResource === 'string' ? input.defaultResource : undefined;
  if (named.length === 0 && fallback === undefined) return {};
  const registered = new Set((await resources.list()).map((r) => r.identifier));
  const quote = (identifier: string) => `"${identifier.slice(0, 100)}"`;
  const fields: Record<string, string> = {};
  const unknown = [...new Set(named)].filter((r) => !registered.has(r));
  if (unknown.length > 0) {
    fields.allowedResources = `${unknown.slice(0, 5).map(quote).join(', ')} ${unknown.length === 1 ? 'is not a registered API resource' : 'are not registered API resources'}`;
  }
  if (fallback !== undefined && !registered.has(fallback)) fields.defaultResource = `${quote(fallback)} is not a registered API resource`;
  return fields;
}

/** Throws ClientValidationError (400 `client.invalid`, per field) when the client names an unregistered resource. */
export async function refuseUnknownResources(
  resources: Pick<ApiResourceService, 'list'>,
  input: { allowedResources?: unknown; defaultResource?: unknown },
): Promise<void> {
  const fields = await unknownResourceFields(resources, input);
  if (Object.keys(fields).length > 0) throw new ClientValidationError(fields);
}
