import Router from '@koa/router';

import type { Config } from '../config/config.js';
import type { PageRenderer } from '../http/render-page.js';

export const DEMO_CALLBACK_PATH = '/demo/callback';

/**
 * Development only (mounted when SEED_DEMO is on): the redirect target of the demo clients,
 * so the authorization URL printed by `npm start` ends on a page that shows the code and
 * how to exchange it, instead of a browser error for a missing local app.
 */
export function createDemoRouter({ config, pages }: { config: Config; pages: PageRenderer }): Router {
  const router = new Router();
  router.get(DEMO_CALLBACK_PATH, async function demoCallback(ctx) {
    const param = (name: string) => {
      const value = ctx.query[name];
      return typeof value === 'string' && value.length <= 512 ? value : undefined;
    };
    const code = param('code');
    const error = param('error');
    const tokenEndpoint = `${config.issuer}/token`;
    const redirectUri = `${config.issuer}${DEMO_CALLBACK_PATH}`;
    await pages.render(ctx, 'demo/callback', {
      title: error ? 'Sign-in not completed' : 'Signed in',
      code,
      state: param('state'),
      error,
      errorDescription: param('error_description'),
      curl: code
        ? [
            `curl -s ${tokenEndpoint} \\`,
            '  -d grant_type=authorization_code \\',
            '  -d client_id=demo-public-client \\',
            `  -d redirect_uri=${redirectUri} \\`,
            `  -d code=${code} \\`,
            '  -d code_verifier=PASTE_THE_CODE_VERIFIER_PRINTED_BY_NPM_START',
          ].join('\n')
        : undefined,
    });
  });
  return router;
}
