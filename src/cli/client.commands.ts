import { refuseUnknownResources } from '../admin/client-resources.js';
import { parseNewClientInput } from '../clients/client-input.js';
import type { ClientInput, ClientService, ClientView, CreatedClient } from '../clients/client.service.js';
import type { CliCommand } from './command.js';
import { CLI_AUTHORITY, EXIT_OK, UsageError, listCommand, parseCommandArgs, singlePositional, toCommandFunction, writeFailure, writeJson } from './command.js';

const createUsage = `Usage: npm run cli -- client create --name NAME --redirect-uri URI [--redirect-uri URI…] [options]

Registers a client. Prints its client_id and, for a confidential client, its secret:
the secret is shown this once and cannot be recovered later.

Options:
  --name NAME                      display name, shown on the consent page (required)
  --redirect-uri URI               where authorization responses go; repeat for several (at least one)
  --post-logout-redirect-uri URI   where to return after sign-out; repeat for several
  --backchannel-logout-uri URI     where to POST a signed logout token when a session the client
                                   signed in through ends (OpenID Connect Back-Channel Logout)
  --backchannel-logout-session-required
                                   logout tokens carry the session id (sid); needs the URI
  --public                         a public client (browser or native app): no secret, PKCE only
  --require-mfa                    every sign-in to this client needs a second factor
  --skip-pkce                      let this confidential client leave out PKCE (older server-side
                                   apps); refused with --public: a public client always uses PKCE
  --resource URI                   a registered API resource (\`resource list\`) this client may get
                                   access tokens for; repeat for several
  --default-resource URI           the API resource a request without resource= is for (one of
                                   the --resource values)
  --json                           print one JSON object instead of text
  -h, --help                       show this help

Redirect URIs must be absolute, without a fragment, and https (http only for 127.0.0.1,
localhost and [::1]); private-use schemes (com.example.app:/cb) only with --public.
The back-channel logout URI follows the same rules, without private-use schemes.
With --json through npm, use \`npm run --silent cli -- …\`: npm prints a banner on stdout.
`;

const listUsage = `Usage: npm run cli -- client list [--json]

Lists the registered clients. Secrets are never shown.

Options:
  --json       print a JSON array instead of text
  -h, --help   show this help
`;

const setResourcesUsage = `Usage: npm run cli -- client set-resources CLIENT_ID [--resource URI…] [--default-resource URI] [--json]

Sets the API resources (RFC 8707) a client may get access tokens for, replacing the ones it had;
everything else about the client stays. Without --resource, it may get tokens for none.
Each URI must be a registered API resource (\`resource list\`). Exits with code 1 if there is
no such client or a resource is not registered (nothing is changed then).

Options:
  --resource URI           an API resource this client may get tokens for; repeat for several
  --default-resource URI   the one a request without resource= is for (one of the --resource values)
  --json                   print one JSON object instead of text
  -h, --help               show this help
`;

const deleteUsage = `Usage: npm run cli -- client delete CLIENT_ID

Deletes a client, and every token, code and grant issued to it.
Exits with code 1 if there is no client with this id.

Options:
  -h, --help   show this help
`;

const rotateUsage = `Usage: npm run cli -- client rotate-secret CLIENT_ID [--json]

Gives a confidential client a new secret and prints it: it is shown this once.
The previous secret keeps working for CLIENT_SECRET_GRACE_PERIOD seconds (default
one day), so that every instance of the app can switch over; then only the new one works.
Exits with code 1 if there is no such client, or if it has no secret (a public client,
or one that authenticates with private_key_jwt).

Options:
  --json       print one JSON object instead of text
  -h, --help   show this help
`;

/** Every client, page by page (the service pages its lists). */
async function allClients(clients: ClientService): Promise<ClientView[]> {
  const all: ClientView[] = [];
  let cursor: string | undefined;
  do {
    const page = await clients.list({ limit: 200, cursor });
    all.push(...page.clients);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

/** The client as printed by `--json`: the provider's metadata names (RFC 7591 §2). */
export interface ClientJson {
  client_id: string;
  client_secret?: string;
  client_name: string;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  backchannel_logout_uri?: string;
  backchannel_logout_session_required?: boolean;
  token_endpoint_auth_method: string;
  require_mfa: boolean;
  skip_pkce: boolean;
  allowed_resources: string[];
  default_resource?: string;
}

function toJson(client: ClientView): ClientJson {
  return {
    client_id: client.clientId,
    client_name: client.name,
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    // Only for a client that has one: older scripts read the JSON as it was.
    ...(client.backchannelLogoutUri
      ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: client.backchannelLogoutSessionRequired }
      : {}),
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    require_mfa: client.requireMfa,
    skip_pkce: client.skipPkce,
    allowed_resources: client.allowedResources,
    ...(client.defaultResource !== undefined ? { default_resource: client.defaultResource } : {}),
  };
}

function createdJson(client: CreatedClient): ClientJson {
  const { client_id, ...rest } = toJson(client);
  // Field order as documented: id, secret, then the metadata.
  return { client_id, ...(client.clientSecret ? { client_secret: client.clientSecret } : {}), ...rest };
}

function resourceLines(client: ClientView): string[] {
  return [
    ...client.allowedResources.map((uri) => `  allowed_resource:           ${uri}`),
    ...(client.defaultResource !== undefined ? [`  default_resource:           ${client.defaultResource}`] : []),
  ];
}

function createdText(client: CreatedClient): string {
  const lines = [
    `Created ${client.public ? 'public' : 'confidential'} client "${client.name}".`,
    `  client_id:                  ${client.clientId}`,
  ];
  if (client.clientSecret) lines.push(`  client_secret:              ${client.clientSecret}`);
  lines.push(
    `  token_endpoint_auth_method: ${client.tokenEndpointAuthMethod}`,
    ...client.redirectUris.map((uri) => `  redirect_uri:               ${uri}`),
    ...client.postLogoutRedirectUris.map((uri) => `  post_logout_redirect_uri:   ${uri}`),
  );
  if (client.backchannelLogoutUri) lines.push(`  backchannel_logout_uri:     ${client.backchannelLogoutUri}`);
  if (client.backchannelLogoutSessionRequired) lines.push('  backchannel_logout_session_required: true');
  if (client.requireMfa) lines.push('  require_mfa:                true (every sign-in needs a second factor)');
  if (client.skipPkce) lines.push('  skip_pkce:                  true (authorization requests may leave out PKCE)');
  lines.push(...resourceLines(client));
  if (client.clientSecret) {
    lines.push('', 'The client secret will not be shown again: store it now (only a sealed copy is kept).');
  } else {
    lines.push('', 'A public client has no secret: it must use PKCE (S256).');
  }
  return `${lines.join('\n')}\n`;
}

export const clientCreateCommand: CliCommand = {
  name: 'client create',
  summary: 'register a client (prints its secret once)',
  usage: createUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, {
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      'backchannel-logout-uri': { type: 'string' },
      'backchannel-logout-session-required': { type: 'boolean' },
      public: { type: 'boolean' },
      'require-mfa': { type: 'boolean' },
      'skip-pkce': { type: 'boolean' },
      resource: { type: 'string', multiple: true },
      'default-resource': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (values.help) return 'help';
    const name = values.name;
    const redirectUris = values['redirect-uri'] ?? [];
    if (name === undefined) throw new UsageError('--name is required');
    if (redirectUris.length === 0) throw new UsageError('at least one --redirect-uri is required');
    const input = {
      name,
      redirectUris,
      postLogoutRedirectUris: values['post-logout-redirect-uri'] ?? [],
      ...(values['backchannel-logout-uri'] !== undefined ? { backchannelLogoutUri: values['backchannel-logout-uri'] } : {}),
      backchannelLogoutSessionRequired: values['backchannel-logout-session-required'] ?? false,
      public: values.public ?? false,
      requireMfa: values['require-mfa'] ?? false,
      skipPkce: values['skip-pkce'] ?? false,
    };
    const resources = { allowedResources: values.resource ?? [], defaultResource: values['default-resource'] };
    const json = values.json ?? false;

    return async ({ services, out }) => {
      // The API resources must be registered; then the service checks the name and every
      // redirect URI (src/clients/redirect-uri.ts) before it stores anything.
      await refuseUnknownResources(services.resources, resources);
      const withResources = resources.allowedResources.length > 0 || resources.defaultResource !== undefined;
      // The short input has no resources: as the full ClientInput it becomes (same defaults).
      const client = await services.clients.create(withResources ? { ...parseNewClientInput(input).input, ...resources } : input, CLI_AUTHORITY);
      if (json) writeJson(out, createdJson(client));
      else out.write(createdText(client));
      return EXIT_OK;
    };
  },
};

export const clientListCommand = listCommand<ClientView>({
  name: 'client list',
  summary: 'list clients (never shows secrets)',
  usage: listUsage,
  load: (services) => allClients(services.clients),
  toJson: (client) => ({ ...toJson(client), created_at: client.createdAt.toISOString() }),
  empty: 'No clients.',
  columns: ['CLIENT ID', 'TYPE', 'NAME', 'REDIRECT URIS'],
  row: (c) => [c.clientId, c.public ? 'public' : 'confidential', c.name, c.redirectUris.join(' ')],
});

/** Every editable field of a client as it is: the input that changes nothing. */
async function currentInput(clients: ClientService, client: ClientView): Promise<ClientInput> {
  // The JWKS itself is not in the view (only whether there is one): read it from the metadata.
  const jwks = client.hasJwks ? ((await clients.find(client.clientId))?.jwks as ClientInput['jwks']) : undefined;
  return {
    name: client.name,
    logoUri: client.logoUri,
    redirectUris: client.redirectUris,
    postLogoutRedirectUris: client.postLogoutRedirectUris,
    grantTypes: client.grantTypes as ClientInput['grantTypes'],
    applicationType: client.applicationType,
    tokenEndpointAuthMethod: client.tokenEndpointAuthMethod as ClientInput['tokenEndpointAuthMethod'],
    jwksUri: client.jwksUri,
    jwks,
    scopes: client.scopes,
    requireMfa: client.requireMfa,
    firstParty: client.firstParty,
    skipPkce: client.skipPkce,
    allowedResources: client.allowedResources,
    defaultResource: client.defaultResource,
    accessTokenTtl: client.accessTokenTtl,
    idTokenTtl: client.idTokenTtl,
    refreshTokenTtl: client.refreshTokenTtl,
  };
}

export const clientSetResourcesCommand: CliCommand = {
  name: 'client set-resources',
  summary: 'set the API resources a client may get tokens for',
  usage: setResourcesUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(
      args,
      { resource: { type: 'string', multiple: true }, 'default-resource': { type: 'string' }, json: { type: 'boolean' } },
      { allowPositionals: true },
    );
    if (values.help) return 'help';
    const clientId = singlePositional(positionals, 'CLIENT_ID');
    const resources = { allowedResources: values.resource ?? [], defaultResource: values['default-resource'] };
    const json = values.json ?? false;

    return async ({ services, out, err }) => {
      const client = await services.clients.get(clientId);
      if (!client) return writeFailure(err, `no client with id "${clientId}"`);
      await refuseUnknownResources(services.resources, resources);
      const updated = await services.clients.update(clientId, { ...(await currentInput(services.clients, client)), ...resources }, CLI_AUTHORITY);
      if (json) {
        writeJson(out, toJson(updated));
      } else {
        const lines = resourceLines(updated);
        out.write(`Updated client ${clientId}: ${lines.length === 0 ? 'it may get tokens for no API resource.' : 'API resources'}\n${lines.map((l) => `${l}\n`).join('')}`);
      }
      return EXIT_OK;
    };
  },
};

export const clientDeleteCommand: CliCommand = {
  name: 'client delete',
  summary: 'delete a client',
  usage: deleteUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, {}, { allowPositionals: true });
    if (values.help) return 'help';
    const clientId = singlePositional(positionals, 'CLIENT_ID');

    return async ({ services, out, err }) => {
      if (!(await services.clients.remove(clientId, CLI_AUTHORITY))) return writeFailure(err, `no client with id "${clientId}"`);
      out.write(`Deleted client ${clientId}.\n`);
      return EXIT_OK;
    };
  },
};

/** `client rotate-secret --json`: the new secret and until when the previous one still works. */
export interface RotatedSecretJson {
  client_id: string;
  client_secret: string;
  previous_secret_expires_at: string;
}

export const clientRotateSecretCommand: CliCommand = {
  name: 'client rotate-secret',
  summary: 'give a client a new secret (the old one works for a grace period)',
  usage: rotateUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } }, { allowPositionals: true });
    if (values.help) return 'help';
    const clientId = singlePositional(positionals, 'CLIENT_ID');
    const json = values.json ?? false;

    return async ({ services, out }) => {
      // Unknown client (404) and a client without a secret (400) are AppErrors: one line on stderr, exit 1.
      const rotated = await services.clients.rotateSecret(clientId, CLI_AUTHORITY);
      const until = rotated.previousSecretExpiresAt.toISOString();
      if (json) {
        const body: RotatedSecretJson = { client_id: clientId, client_secret: rotated.clientSecret, previous_secret_expires_at: until };
        writeJson(out, body);
      } else {
        out.write(
          [
            `New secret for client ${clientId}.`,
            `  client_secret:               ${rotated.clientSecret}`,
            `  previous_secret_expires_at:  ${until} (the old secret works until then)`,
            '',
            'The new secret will not be shown again: store it now (only a sealed copy is kept).',
            '',
          ].join('\n'),
        );
      }
      return EXIT_OK;
    };
  },
};

export const clientCreate = toCommandFunction(clientCreateCommand);
export const clientList = toCommandFunction(clientListCommand);
export const clientDelete = toCommandFunction(clientDeleteCommand);
export const clientSetResources = toCommandFunction(clientSetResourcesCommand);
export const clientRotateSecret = toCommandFunction(clientRotateSecretCommand);
