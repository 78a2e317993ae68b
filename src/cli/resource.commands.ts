import type { ApiResourceInput, ApiResourceScope, ApiResourceView } from '../resources/api-resource.service.js';
import { ACCESS_TOKEN_FORMATS, MAX_RESOURCE_TOKEN_TTL, MIN_RESOURCE_TOKEN_TTL } from '../resources/api-resource.service.js';
import type { AccessTokenFormat } from '../resources/api-resource.service.js';
import type { CliCommand } from './command.js';
import { CLI_AUTHORITY, EXIT_OK, UsageError, listCommand, parseCommandArgs, singlePositional, toCommandFunction, writeFailure, writeJson } from './command.js';

/**
 * `resource list | create | update | delete`: API resources (RFC 8707), the apps' own APIs that
 * access tokens can be for, over the same ApiResourceService as the console and the management
 * API (which validates everything and records the audit events, the command line as actor).
 */

const createUsage = `Usage: npm run cli -- resource create --identifier URI --name NAME [options]

Registers an API resource: one of your APIs that access tokens can be for (RFC 8707). Clients
ask for it with resource=URI; the token's audience (aud) is the identifier. Allow a client to
get tokens for it with \`client create --resource URI\` or \`client set-resources\`.

Options:
  --identifier URI               absolute https, http or urn URI without a query or fragment,
                                 not on this server's own origin (required; never changes)
  --name NAME                    display name, shown on the consent page (required)
  --scope NAME=DESCRIPTION       a scope this API defines and what the consent page says about
                                 it, e.g. --scope "notes:read=Read your notes"; repeat for several
                                 (the first = separates the name from the description)
  --format jwt|opaque            access token format: jwt (RFC 9068, checked against the JWKS;
                                 the default) or opaque (the API introspects it)
  --ttl SECONDS                  access token lifetime (${MIN_RESOURCE_TOKEN_TTL} to ${MAX_RESOURCE_TOKEN_TTL}); default: ACCESS_TOKEN_TTL
  --introspection-client ID      a client that may introspect this API's tokens besides the
                                 client a token was issued to; repeat for several
  --json                         print one JSON object instead of text
  -h, --help                     show this help

With --json through npm, use \`npm run --silent cli -- …\`: npm prints a banner on stdout.
`;

const updateUsage = `Usage: npm run cli -- resource update IDENTIFIER [options]

Changes an API resource. Options left out keep their current values; the identifier never
changes (tokens already issued name it). Exits with code 1 if there is no such resource.

Options:
  --name NAME                    display name
  --scope NAME=DESCRIPTION       replaces every scope with the ones given; repeat for several
  --no-scopes                    removes every scope
  --format jwt|opaque            access token format
  --ttl SECONDS|default          access token lifetime, or the server default (ACCESS_TOKEN_TTL)
  --introspection-client ID      replaces the clients that may introspect; repeat for several
  --no-introspection-clients     removes them all
  --json                         print one JSON object instead of text
  -h, --help                     show this help
`;

const listUsage = `Usage: npm run cli -- resource list [--json]

Lists the registered API resources, by name.

Options:
  --json       print a JSON array instead of text
  -h, --help   show this help
`;

const deleteUsage = `Usage: npm run cli -- resource delete IDENTIFIER

Deletes an API resource: no new tokens are issued for it (clients that still list it get
invalid_target when they ask for it); JWT access tokens already issued stay valid until they
expire. Exits with code 1 if there is no such resource.

Options:
  -h, --help   show this help
`;

/** A resource as printed by `--json`: snake_case, as the other commands print. */
export interface ApiResourceJson {
  identifier: string;
  name: string;
  scopes: ApiResourceScope[];
  token_format: AccessTokenFormat;
  /** null: ACCESS_TOKEN_TTL. */
  access_token_ttl: number | null;
  introspection_clients: string[];
  created_at: string;
  updated_at: string;
}

function toJson(resource: ApiResourceView): ApiResourceJson {
  return {
    identifier: resource.identifier,
    name: resource.name,
    scopes: resource.scopes,
    token_format: resource.tokenFormat,
    access_token_ttl: resource.accessTokenTtl ?? null,
    introspection_clients: resource.introspectionClients,
    created_at: resource.createdAt.toISOString(),
    updated_at: resource.updatedAt.toISOString(),
  };
}

function toText(verb: string, resource: ApiResourceView): string {
  const lines = [
    `${verb} API resource "${resource.name}".`,
    `  identifier:            ${resource.identifier}`,
    `  token_format:          ${resource.tokenFormat}`,
    `  access_token_ttl:      ${resource.accessTokenTtl ?? 'server default (ACCESS_TOKEN_TTL)'}`,
    ...resource.scopes.map((s) => `  scope:                 ${s.name} (${s.description})`),
    ...resource.introspectionClients.map((id) => `  introspection_client:  ${id}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** `--scope NAME=DESCRIPTION` values; the service checks names and descriptions. */
function parseScopes(values: string[]): ApiResourceScope[] {
  return values.map((value) => {
    const at = value.indexOf('=');
    if (at <= 0) throw new UsageError(`--scope must be NAME=DESCRIPTION, e.g. --scope "notes:read=Read your notes" (got '${value.slice(0, 100)}')`);
    return { name: value.slice(0, at), description: value.slice(at + 1) };
  });
}

function parseFormat(value: string | undefined): AccessTokenFormat | undefined {
  if (value === undefined) return undefined;
  if (!(ACCESS_TOKEN_FORMATS as readonly string[]).includes(value)) throw new UsageError(`--format must be jwt or opaque (got '${value.slice(0, 100)}')`);
  return value as AccessTokenFormat;
}

/** Whole seconds in range; `default` (update only) clears the override. */
function parseTtl(value: string | undefined, allowDefault: boolean): number | 'default' | undefined {
  if (value === undefined) return undefined;
  if (allowDefault && value === 'default') return 'default';
  const seconds = /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
  if (Number.isNaN(seconds) || seconds < MIN_RESOURCE_TOKEN_TTL || seconds > MAX_RESOURCE_TOKEN_TTL) {
    throw new UsageError(`--ttl must be a whole number of seconds from ${MIN_RESOURCE_TOKEN_TTL} to ${MAX_RESOURCE_TOKEN_TTL}${allowDefault ? ', or default' : ''}`);
  }
  return seconds;
}

export const resourceCreateCommand: CliCommand = {
  name: 'resource create',
  summary: 'register an API resource (RFC 8707) that access tokens can be for',
  usage: createUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, {
      identifier: { type: 'string' },
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      format: { type: 'string' },
      ttl: { type: 'string' },
      'introspection-client': { type: 'string', multiple: true },
      json: { type: 'boolean' },
    });
    if (values.help) return 'help';
    if (values.identifier === undefined) throw new UsageError('--identifier is required');
    if (values.name === undefined) throw new UsageError('--name is required');
    const format = parseFormat(values.format);
    const ttl = parseTtl(values.ttl, false);
    const input = {
      identifier: values.identifier,
      name: values.name,
      scopes: parseScopes(values.scope ?? []),
      ...(format ? { tokenFormat: format } : {}),
      ...(typeof ttl === 'number' ? { accessTokenTtl: ttl } : {}),
      introspectionClients: values['introspection-client'] ?? [],
    };
    const json = values.json ?? false;

    return async ({ services, out }) => {
      // Refusals (identifier rules, reserved scopes, a taken identifier) are AppErrors: one line, exit 1.
      const created = await services.resources.create(input, CLI_AUTHORITY);
      if (json) writeJson(out, toJson(created));
      else out.write(toText('Created', created));
      return EXIT_OK;
    };
  },
};

export const resourceUpdateCommand: CliCommand = {
  name: 'resource update',
  summary: 'change an API resource (the identifier stays)',
  usage: updateUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        name: { type: 'string' },
        scope: { type: 'string', multiple: true },
        'no-scopes': { type: 'boolean' },
        format: { type: 'string' },
        ttl: { type: 'string' },
        'introspection-client': { type: 'string', multiple: true },
        'no-introspection-clients': { type: 'boolean' },
        json: { type: 'boolean' },
      },
      { allowPositionals: true },
    );
    if (values.help) return 'help';
    const identifier = singlePositional(positionals, 'IDENTIFIER');
    if (values.scope && values['no-scopes']) throw new UsageError('give --scope or --no-scopes, not both');
    if (values['introspection-client'] && values['no-introspection-clients']) {
      throw new UsageError('give --introspection-client or --no-introspection-clients, not both');
    }
    const scopes = values['no-scopes'] ? [] : values.scope ? parseScopes(values.scope) : undefined;
    const introspectionClients = values['no-introspection-clients'] ? [] : values['introspection-client'];
    const format = parseFormat(values.format);
    const ttl = parseTtl(values.ttl, true);
    const json = values.json ?? false;

    return async ({ services, out, err }) => {
      const current = await services.resources.get(identifier);
      if (!current) return writeFailure(err, `no API resource "${identifier}"`);
      const keptTtl = ttl === 'default' ? undefined : (ttl ?? current.accessTokenTtl);
      const input: ApiResourceInput = {
        name: values.name ?? current.name,
        scopes: scopes ?? current.scopes,
        tokenFormat: format ?? current.tokenFormat,
        ...(keptTtl !== undefined ? { accessTokenTtl: keptTtl } : {}),
        introspectionClients: introspectionClients ?? current.introspectionClients,
      };
      const updated = await services.resources.update(identifier, input, CLI_AUTHORITY);
      if (json) writeJson(out, toJson(updated));
      else out.write(toText('Updated', updated));
      return EXIT_OK;
    };
  },
};

export const resourceListCommand = listCommand<ApiResourceView>({
  name: 'resource list',
  summary: 'list API resources',
  usage: listUsage,
  load: (services) => services.resources.list(),
  toJson,
  empty: 'No API resources.',
  columns: ['IDENTIFIER', 'FORMAT', 'TTL', 'SCOPES', 'NAME'],
  row: (r) => [r.identifier, r.tokenFormat, r.accessTokenTtl === undefined ? 'default' : String(r.accessTokenTtl), r.scopes.map((s) => s.name).join(' ') || '-', r.name],
});

export const resourceDeleteCommand: CliCommand = {
  name: 'resource delete',
  summary: 'delete an API resource (no new tokens for it)',
  usage: deleteUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, {}, { allowPositionals: true });
    if (values.help) return 'help';
    const identifier = singlePositional(positionals, 'IDENTIFIER');

    return async ({ services, out, err }) => {
      if (!(await services.resources.remove(identifier, CLI_AUTHORITY))) return writeFailure(err, `no API resource "${identifier}"`);
      out.write(`Deleted API resource ${identifier}.\n`);
      return EXIT_OK;
    };
  },
};

export const resourceCreate = toCommandFunction(resourceCreateCommand);
export const resourceUpdate = toCommandFunction(resourceUpdateCommand);
export const resourceList = toCommandFunction(resourceListCommand);
export const resourceDelete = toCommandFunction(resourceDeleteCommand);
