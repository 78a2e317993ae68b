import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST a relying party's back-channel logout endpoint received. */
export interface ReceivedLogout {
  contentType: string | undefined;
  /** The `logout_token` form field. */
  token: string | undefined;
  /** Every form field's name. */
  fields: string[];
  /** The status this receiver answered with. */
  status: number;
}

/** A back-channel logout delivery record as the server stores it (`backchannel_logouts`), for tests to read. */
export interface StoredLogout {
  _id: string;
  state: string;
  clientId: string;
  sub: string;
  sid?: string;
  attempts: number;
  nextAttemptAt: Date;
  lastError?: string;
  deadReason?: string;
}

/**
 * A relying party's back-channel logout endpoint on loopback (OIDC Back-Channel Logout §2.5):
 * records every POST and answers with the next status of `statuses` (200 once they run out), or
 * with `always` while that is set.
 */
export interface LogoutReceiver {
  url: string;
  received: ReceivedLogout[];
  /** Statuses to answer with, in order, before falling back to 200. */
  statuses: number[];
  /** When set, every answer has this status. */
  always: number | undefined;
  /** Forgets what was received and answers 200 again (between tests). */
  reset(): void;
  close(): Promise<void>;
}

export async function startLogoutReceiver(): Promise<LogoutReceiver> {
  const receiver: LogoutReceiver = {
    url: '',
    received: [],
    statuses: [],
    always: undefined,
    reset() {
      receiver.received.length = 0;
      receiver.statuses.length = 0;
      receiver.always = undefined;
    },
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const status = receiver.always ?? receiver.statuses.shift() ?? 200;
      receiver.received.push({ contentType: req.headers['content-type'], token: form.get('logout_token') ?? undefined, fields: [...form.keys()], status });
      // §2.8: no-store on the answer; a body the sender must ignore.
      res.writeHead(status, { 'cache-control': 'no-store', 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'nope');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}
