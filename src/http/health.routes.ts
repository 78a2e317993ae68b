import Router from '@koa/router';
import type { Connection } from 'mongoose';

/** /healthz: the process is up. /readyz: it can reach the database (load balancers route on this). */
export function createHealthRouter({ connection }: { connection: Connection }): Router {
  const router = new Router();
  router.get('/healthz', function liveness(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async function readiness(ctx) {
    ctx.set('Cache-Control', 'no-store');
    try {
      await connection.db?.admin().command({ ping: 1 });
      ctx.body = { status: 'ready' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', reason: 'database unreachable' };
    }
  });
  return router;
}
