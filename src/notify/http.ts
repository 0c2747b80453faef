/**
 * One JSON POST with Node's fetch, bounded by a timeout, for the HTTP
 * channels. Every failure becomes a DeliveryError whose message names the
 * host but never the URL path or query, because webhook URLs often carry
 * their token there.
 */
import { DeliveryError, redactSecrets } from './channel.js';

const BODY_EXCERPT_CHARS = 200;
/** Bytes of an error response read to build the excerpt; the rest is discarded. */
const BODY_READ_BYTES = 64 * 1024;

/** Connection error codes, in words. */
const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
};

export interface PostOptions {
  /** The channel name, for the error. */
  channel: string;
  headers?: Record<string, string>;
  timeoutMs: number;
  /** Values to hide if the receiver echoes them in an error response (the URL, header values, keys). */
  secrets: readonly string[];
}

/** Posts `body` as JSON to `url`; resolves on a 2xx status, rejects with a DeliveryError otherwise. */
export async function postJson(url: string, body: unknown, options: PostOptions): Promise<void> {
  const parsed = new URL(url);
  const host = parsed.host;
  const hidden = [url, `${parsed.pathname}${parsed.search}`, ...options.secrets].filter((value) => value.length > 1);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...options.headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs),
      redirect: 'error',
    });
  } catch (error) {
    throw new DeliveryError(describeFetchError(error, host, options.timeoutMs, hidden), { channel: options.channel, retryable: true, cause: error });
  }

  const text = await readStart(response);
  if (response.ok) return;
  // Redact before cutting, so no part of a secret can survive at the cut.
  const oneLine = redactSecrets(text, hidden).replace(/\s+/g, ' ').trim().slice(0, BODY_EXCERPT_CHARS);
  const excerpt = oneLine === '' ? '' : `: ${oneLine}`;
  throw new DeliveryError(`${host} returned HTTP ${response.status} ${response.statusText}${excerpt}`, {
    channel: options.channel,
    retryable: isRetryableStatus(response.status),
  });
}

/** Server errors, timeouts and rate limits may pass later; any other 4xx means the request itself is wrong. */
function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** Reads the start of the response body and cancels the rest, so a large body neither fills memory nor keeps the connection busy. */
async function readStart(response: Response): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < BODY_READ_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // A body cut off by a timeout or a reset leaves what arrived so far, and the status alone decides the outcome.
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeFetchError(error: unknown, host: string, timeoutMs: number, hidden: string[]): string {
  const name = (error as Error | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return `${host}: no response within ${timeoutMs} ms`;
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const code = cause?.code;
  if (code !== undefined) return `${host}: ${NETWORK_ERRORS[code] ?? 'request failed'} (${code})`;
  // fetch reports a redirect or an invalid header value as a TypeError without a code, and its message may quote the header value.
  const message = cause?.message ?? (error as Error | undefined)?.message ?? String(error);
  return `${host}: request failed: ${redactSecrets(message, hidden)}`;
}
