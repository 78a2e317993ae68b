import { randomBytes } from 'node:crypto';

import type { AdapterPayload } from 'oidc-provider';
import { z } from 'zod';

import { safeText } from '../accounts/account.service.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { AppError } from '../http/app-error.js';
import type { ClientStore } from '../oidc/mongo-adapter.js';
import type { ClientModel, ClientRecord } from './client.model.js';
import { RedirectUriError, classifyRedirectUri } from './redirect-uri.js';

export const newClientSchema = z.object({
  name: safeText(100).transform((s) => s.trim()).pipe(z.string().min(1, 'must not be empty')),
  redirectUris: z.array(z.string()).min(1, 'at least one redirect URI is required').max(20),
  postLogoutRedirectUris: z.array(z.string()).max(20).default([]),
  public: z.boolean().default(false),
  /** Every sign-in to this client needs a second factor (src/oidc/policy.ts). */
  requireMfa: z.boolean().default(false),
  /** Only for seeding well-known demo clients; normally generated. */
  clientId: z.string().regex(/^[A-Za-z0-9._~-]{8,64}$/).optional(),
});

export type NewClientInput = z.input<typeof newClientSchema>;

export interface ClientView {
  clientId: string;
  name: string;
  public: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  grantTypes: string[];
  tokenEndpointAuthMethod: string;
  requireMfa: boolean;
  createdAt: Date;
}

export interface CreatedClient extends ClientView {
  /** Shown once, at creation; only the sealed form is stored. */
  clientSecret: string | undefined;
}

export interface ClientService extends ClientStore {
  create(input: NewClientInput): Promise<CreatedClient>;
  get(clientId: string): Promise<ClientView | undefined>;
  list(): Promise<ClientView[]>;
  remove(clientId: string): Promise<boolean>;
}

/** base64url of 32 random bytes: URL-safe, because some RPs put secrets in Basic auth without encoding them. */
function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function newClientId(): string {
  return randomBytes(16).toString('base64url');
}

function validateUris(uris: string[], publicClient: boolean, label: string): { nativeApp: boolean } {
  let nativeApp = false;
  for (const uri of uris) {
    try {
      if (classifyRedirectUri(uri, { publicClient }) === 'private-use') nativeApp = true;
    } catch (err) {
      if (err instanceof RedirectUriError) {
        throw new AppError(400, 'client.invalid_redirect_uri', err.message.replace(/^redirect URI/, label));
      }
      throw err;
    }
  }
  return { nativeApp };
}

function toView(record: ClientRecord): ClientView {
  const metadata = JSON.parse(record.metadata) as AdapterPayload;
  return {
    clientId: record._id,
    name: record.name,
    public: record.public,
    redirectUris: (metadata.redirect_uris as string[] | undefined) ?? [],
    postLogoutRedirectUris: (metadata.post_logout_redirect_uris as string[] | undefined) ?? [],
    grantTypes: (metadata.grant_types as string[] | undefined) ?? [],
    tokenEndpointAuthMethod: String(metadata.token_endpoint_auth_method ?? 'client_secret_basic'),
    requireMfa: metadata.require_mfa === true,
    createdAt: record.createdAt,
  };
}

export interface ClientServiceDeps {
  Client: ClientModel;
  secretBox: SecretBox;
}

export function createClientService({ Client, secretBox }: ClientServiceDeps): ClientService {
  const context = (clientId: string) => `client_secret:${clientId}`;

  return {
    async create(input) {
      const parsed = newClientSchema.safeParse(input);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new AppError(400, 'client.invalid', `${issue?.path.join('.') ?? 'input'}: ${issue?.message ?? 'invalid'}`);
      }
      const data = parsed.data;
      const { nativeApp } = validateUris(data.redirectUris, data.public, 'redirect URI');
      validateUris(data.postLogoutRedirectUris, data.public, 'post-logout redirect URI');

      const clientId = data.clientId ?? newClientId();
      const clientSecret = data.public ? undefined : newSecret();
      const metadata: AdapterPayload = {
        client_id: clientId,
        client_name: data.name,
        application_type: nativeApp ? 'native' : 'web',
        redirect_uris: data.redirectUris,
        post_logout_redirect_uris: data.postLogoutRedirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: data.public ? 'none' : 'client_secret_basic',
        ...(data.requireMfa ? { require_mfa: true } : {}),
      };
      try {
        const doc = await Client.create({
          _id: clientId,
          name: data.name,
          metadata: JSON.stringify(metadata),
          secretSealed: clientSecret ? secretBox.seal(clientSecret, context(clientId)) : null,
          public: data.public,
        });
        return { ...toView(doc.toObject()), clientSecret };
      } catch (err) {
        if ((err as { code?: unknown }).code === 11000) {
          throw new AppError(409, 'client.exists', `a client with id ${clientId} already exists`);
        }
        throw err;
      }
    },

    async get(clientId) {
      const doc = await Client.findById(clientId).lean();
      return doc ? toView(doc) : undefined;
    },

    async list() {
      const docs = await Client.find().sort({ createdAt: 1 }).lean();
      return docs.map(toView);
    },

    async remove(clientId) {
      const result = await Client.deleteOne({ _id: clientId });
      return result.deletedCount === 1;
    },

    // ClientStore: what oidc-provider's Client model reads and writes through the adapter.
    async find(clientId) {
      const doc = await Client.findById(clientId).lean();
      if (!doc) return undefined;
      const metadata = JSON.parse(doc.metadata) as AdapterPayload;
      if (doc.secretSealed) metadata.client_secret = secretBox.open(doc.secretSealed, context(clientId));
      return metadata;
    },

    async upsert(clientId, payload) {
      const { client_secret: secret, ...metadata } = payload;
      const name = typeof metadata.client_name === 'string' && metadata.client_name ? metadata.client_name : clientId;
      await Client.updateOne(
        { _id: clientId },
        {
          $set: {
            name,
            metadata: JSON.stringify(metadata),
            secretSealed: typeof secret === 'string' ? secretBox.seal(secret, context(clientId)) : null,
            public: metadata.token_endpoint_auth_method === 'none',
          },
        },
        { upsert: true },
      );
    },

    async destroy(clientId) {
      await Client.deleteOne({ _id: clientId });
    },
  };
}
