import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import Router from '@koa/router';
import Koa from 'koa';
import type { Context } from 'koa';

import { createAccessTokenMiddleware } from './access-token.middleware.js';
import type { AccessTokenOptions, CallerState } from './access-token.middleware.js';

/** The scope each route needs; rename them to match the scopes registered for your resource. */
export interface RouteScopes {
  me: string;
  readNotes: string;
  writeNotes: string;
}

export interface ProtectedApiOptions extends AccessTokenOptions {
  scopes?: Partial<RouteScopes>;
}

export const DEFAULT_SCOPES: RouteScopes = { me: 'read:profile', readNotes: 'notes:read', writeNotes: 'notes:write' };

interface Note {
  id: number;
  text: string;
  createdBy: string;
}

const MAX_BODY_BYTES = 4096;
const MAX_NOTE_LENGTH = 500;

/** A small API whose every route needs one of our access tokens carrying the route's scope. */
export function createProtectedApi(options: ProtectedApiOptions): Koa<CallerState> {
  const scopes = { ...DEFAULT_SCOPES, ...options.scopes };
  const { requireToken, requireScopes } = createAccessTokenMiddleware(options);
  // In memory, per subject: enough to show that the token decides whose data a request sees.
  const notesBySubject = new Map<string, Note[]>();
  let lastNoteId = 0;

  const router = new Router<CallerState>();
  router.use(requireToken);

  router.get('/me', requireScopes(scopes.me), async function me(ctx) {
    const { sub, clientId, scopes: granted } = ctx.state.caller;
    ctx.body = { sub, client_id: clientId, scopes: granted };
  });

  router.get('/notes', requireScopes(scopes.readNotes), async function listNotes(ctx) {
    const { sub, clientId } = ctx.state.caller;
    ctx.body = { sub, client_id: clientId, notes: notesBySubject.get(sub) ?? [] };
  });

  router.post('/notes', requireScopes(scopes.writeNotes), async function createNote(ctx) {
    const { sub, clientId } = ctx.state.caller;
    const text = await readNoteText(ctx);
    if (text === undefined) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: `send {"text": "…"}, 1 to ${MAX_NOTE_LENGTH} characters` };
      return;
    }
    const note = { id: ++lastNoteId, text, createdBy: clientId };
    notesBySubject.set(sub, [...(notesBySubject.get(sub) ?? []), note]);
    ctx.status = 201;
    ctx.body = { sub, client_id: clientId, note };
  });

  const app = new Koa<CallerState>();
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}

/** Koa has no body parser: read a small JSON body by hand, refusing anything larger. */
async function readNoteText(ctx: Context): Promise<string | undefined> {
  if (!ctx.is('application/json')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  try {
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const text = typeof body === 'object' && body !== null && 'text' in body ? body.text : undefined;
    return typeof text === 'string' && text.trim().length > 0 && text.length <= MAX_NOTE_LENGTH ? text : undefined;
  } catch {
    return undefined;
  }
}

export interface RunningApi {
  url: string;
  close: () => Promise<void>;
}

/** Runs the API on a port (0: any free one) and says where; for main.ts and for tests. */
export async function startProtectedApi(
  options: ProtectedApiOptions & { port?: number; host?: string },
): Promise<RunningApi> {
  const app = createProtectedApi(options);
  const server = createServer(app.callback());
  const host = options.host ?? '127.0.0.1';
  server.listen(options.port ?? 0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
