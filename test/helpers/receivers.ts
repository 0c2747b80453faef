/**
 * Local receivers for notification tests: an HTTP server that records every
 * request and responds with scripted status codes, and an SMTP server
 * (smtp-server, no TLS) that records every message. Both listen on 127.0.0.1.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpReceiver {
  port: number;
  /** A URL on this receiver, such as `http://127.0.0.1:PORT/hook`. */
  url(path?: string): string;
  requests: ReceivedRequest[];
  /** Bodies of the requests so far, parsed as JSON. */
  json(): unknown[];
  /** Status codes for the next requests, in order; after them every request gets 200 (or `defaultStatus`). */
  statuses: number[];
  defaultStatus: number;
  /** Send the request body back with a failure status, like a server that quotes the request it rejects. */
  echo: boolean;
  /** Milliseconds to hold the response of the next requests, in order; after them the response is immediate. */
  delaysMs: number[];
  /** Resolves once `count` requests arrived; rejects after `timeoutMs`. */
  waitForRequests(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

/** Starts an HTTP receiver on 127.0.0.1, on `port` or a free one. */
export async function startHttpReceiver(port = 0): Promise<HttpReceiver> {
  const requests: ReceivedRequest[] = [];
  const receiver: HttpReceiver = {
    port: 0,
    url: (path = '/') => `http://127.0.0.1:${receiver.port}${path}`,
    requests,
    json: () => requests.map((request) => JSON.parse(request.body) as unknown),
    statuses: [],
    defaultStatus: 200,
    delaysMs: [],
    echo: false,
    waitForRequests: (count, timeoutMs = 10_000) => waitUntil(() => requests.length >= count, timeoutMs, () => `${count} requests, got ${requests.length}`).then(() => requests),
    close: () => Promise.resolve(),
  };

  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({ method: request.method ?? '', path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = receiver.statuses.shift() ?? receiver.defaultStatus;
      let body = `failure ${status}`;
      if (status < 300) body = 'ok';
      else if (receiver.echo) body = requests[requests.length - 1]!.body;
      setTimeout(() => {
        if (response.destroyed) return;
        response.writeHead(status, { 'content-type': 'text/plain' });
        response.end(body);
      }, receiver.delaysMs.shift() ?? 0);
    });
  });
  receiver.port = await listen(server, port);
  receiver.close = () => closeServer(server);
  return receiver;
}

/** Returns a port on 127.0.0.1 that nothing listens on at the moment of the call. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server, 0);
  await closeServer(server);
  return port;
}

export interface ReceivedMail {
  /** MAIL FROM address. */
  from: string;
  /** RCPT TO addresses. */
  to: string[];
  /** Header fields by lower-case name, unfolded. */
  headers: Record<string, string>;
  /** The text body, decoded. */
  text: string;
  /** Login name, when the client authenticated. */
  user?: string;
}

export interface SmtpReceiver {
  port: number;
  messages: ReceivedMail[];
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

/** Starts an SMTP server on 127.0.0.1 without TLS; with `login`, it requires and checks that user and password. */
export async function startSmtpReceiver(login?: { user: string; password: string }): Promise<SmtpReceiver> {
  const messages: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: login === undefined ? ['STARTTLS', 'AUTH'] : ['STARTTLS'],
    authOptional: login === undefined,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === login?.user && auth.password === login?.password) return callback(null, { user: auth.username });
      return callback(new Error('invalid user name or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const envelope = session.envelope;
        const from = envelope.mailFrom === false ? '' : envelope.mailFrom.address;
        messages.push({ from, to: envelope.rcptTo.map((r) => r.address), ...parseMessage(Buffer.concat(chunks).toString('utf8')), user: session.user as string | undefined });
        callback();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port));
  });
  return {
    port,
    messages,
    waitForMessages: (count, timeoutMs = 10_000) => waitUntil(() => messages.length >= count, timeoutMs, () => `${count} messages, got ${messages.length}`).then(() => messages),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Splits a message into header fields and a text body. This is only enough
 * for the single-part plain-text messages drplan sends: 7bit or
 * quoted-printable bodies, no multipart and no encoded words.
 */
function parseMessage(raw: string): { headers: Record<string, string>; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const headerBlock = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const headers: Record<string, string> = {};
  for (const line of headerBlock.split('\r\n')) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.slice(split + 4);
  if (headers['content-transfer-encoding'] === 'quoted-printable') {
    body = Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
  }
  return { headers, text: body.replace(/\r\n/g, '\n') };
}

/** Polls `condition` every 20 ms until it holds; rejects after `timeoutMs` with what was expected. */
export async function waitUntil(condition: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
