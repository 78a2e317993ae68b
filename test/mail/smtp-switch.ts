import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP relay in front of the test SMTP server that can be switched off: while down it drops
 * every connection at once (as a stopped mail server would), while up it relays to the real
 * server. The port stays the same, so a mailer keeps its settings across an outage.
 */
export interface SmtpSwitch {
  url: string;
  up(): void;
  down(): void;
  close(): Promise<void>;
}

export async function startSmtpSwitch(targetPort: number, initiallyUp = true): Promise<SmtpSwitch> {
  let isUp = initiallyUp;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    if (!isUp) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    up: () => {
      isUp = true;
    },
    down: () => {
      isUp = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
