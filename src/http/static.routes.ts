import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import type { Middleware } from 'koa';

/**
 * The handful of static assets the pages use, read once at start and served from memory
 * (no directory listing, no path traversal: only names in this table exist).
 */
const ASSETS: Record<string, string> = {
  'app.css': 'text/css; charset=utf-8',
  'password-toggle.js': 'text/javascript; charset=utf-8',
  'copy-button.js': 'text/javascript; charset=utf-8',
};

export function serveStatic({ viewsDir }: { viewsDir: string }): Middleware {
  const files = new Map(
    Object.entries(ASSETS).map(([name, type]) => {
      const body = readFileSync(path.join(viewsDir, 'static', name));
      return [name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` }];
    }),
  );
  return async function staticAssets(ctx, next) {
    if (!ctx.path.startsWith('/static/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const file = files.get(ctx.path.slice('/static/'.length));
    if (!file) return next();
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.set('ETag', file.etag);
    if (ctx.get('if-none-match') === file.etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = file.type;
    ctx.body = file.body;
  };
}
