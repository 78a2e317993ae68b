import type { Context } from 'koa';

/**
 * Renders a pug page through koa-views (`ctx.render`, installed by app.ts) with the locals
 * every page needs. Also used from oidc-provider hooks (error and logout pages): the
 * provider runs inside our Koa app, so its ctx has `render` too.
 */
export interface PageRenderer {
  render(ctx: Context, view: string, locals: Record<string, unknown>, status?: number): Promise<void>;
}

type RenderFn = (view: string, locals?: Record<string, unknown>) => Promise<void>;

export function createPageRenderer({ productName }: { productName: string }): PageRenderer {
  return {
    async render(ctx, view, locals, status = 200) {
      const render = (ctx as Context & { render?: RenderFn }).render;
      if (!render) throw new Error('koa-views is not installed on this app');
      await render(view, { productName, ...locals });
      ctx.status = status;
      ctx.type = 'html';
      // Sign-in pages carry per-person state: never cache them.
      ctx.set('Cache-Control', 'no-store');
    },
  };
}
