/**
 * A loopback reverse proxy in front of several nodes of one deployment, as a load balancer would
 * be: browsers and relying parties see one origin (the issuer), and the test decides per request
 * which node answers. It forwards the request as it came (Host included) and adds what a proxy
 * adds: X-Forwarded-For, -Proto and -Host.
 */
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the proxy handed on, for checks on which node served what. */
export interface Served {
  node: string;
  method: string;
  path: string;
  /** The node's status, or 502 when it could not be reached. */
  status: number;
}

/** A node's name, or a function choosing one per request. */
export type Route = string | ((request: IncomingMessage) => string);

export interface SwitchingProxy {
  /** The proxy's own origin: the ISSUER of the nodes behind it. */
  url: string;
  /** Sends the following requests to this node (or to the node this function picks per request). */
  routeTo(route: Route): void;
  /**
   * The address the proxy reports as the client's in X-Forwarded-For (default: the connection's,
   * always 127.0.0.1 here), so that a test can play visitors from other networks.
   */
  clientAddress: string | undefined;
  /** Every request handed on so far, in the order they arrived. */
  served: Served[];
  close(): Promise<void>;
}

/**
 * Listens on a free loopback port; `nodes` names the port of each node (the nodes can come and
 * go: a node that does not answer gets a 502, as from a real load balancer with no retry).
 */
export async function startSwitchingProxy(nodes: Record<string, number>): Promise<SwitchingProxy> {
  let route: Route = Object.keys(nodes)[0] ?? '';
  const served: Served[] = [];
  const proxy: Omit<SwitchingProxy, 'url' | 'close'> = {
    routeTo(next) {
      route = next;
    },
    clientAddress: undefined,
    served,
  };

  const server = http.createServer((req, res) => {
    const node = typeof route === 'function' ? route(req) : route;
    const port = nodes[node];
    const entry: Served = { node, method: req.method ?? 'GET', path: req.url ?? '/', status: 0 };
    served.push(entry);
    const answer502 = () => {
      entry.status = 502;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`node ${node} unreachable`);
    };
    if (port === undefined) return answer502();

    const client = proxy.clientAddress ?? req.socket.remoteAddress ?? '';
    const forwardedFor = [req.headers['x-forwarded-for'], client].filter(Boolean).join(', ');
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, 'x-forwarded-for': forwardedFor, 'x-forwarded-proto': 'http', 'x-forwarded-host': req.headers.host ?? '' },
        // A fresh connection per request: a pooled one to a node killed meanwhile would fail late.
        agent: false,
      },
      (reply) => {
        entry.status = reply.statusCode ?? 0;
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    upstream.once('error', answer502);
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return Object.assign(proxy, {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
