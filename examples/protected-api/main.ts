import { startProtectedApi } from './protected-api.app.js';

/**
 * Runs the example API: ISSUER (the authorization server's issuer URL), AUDIENCE (this API's
 * resource identifier, as registered there), PORT (default 4000), HOST (default 127.0.0.1).
 */
const { ISSUER, AUDIENCE, PORT = '4000', HOST = '127.0.0.1' } = process.env;
if (!ISSUER || !AUDIENCE) {
  console.error('Set ISSUER (e.g. http://localhost:3000) and AUDIENCE (e.g. https://api.example.com/notes).');
  process.exit(1);
}
const port = Number(PORT);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a port number, not ${PORT}`);
  process.exit(1);
}

const api = await startProtectedApi({ issuer: ISSUER, audience: AUDIENCE, port, host: HOST });
console.log(`Protected API for ${AUDIENCE} (tokens from ${ISSUER}) listening on ${api.url}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void api.close());
