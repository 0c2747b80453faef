/** A pino logger that keeps its lines in memory, so tests can assert exact log fields. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface CapturedLog {
  log: Logger;
  lines: Record<string, unknown>[];
}

/** Creates a logger at `level` whose output is parsed into `lines`. */
export function captureLog(level = 'debug'): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { log: pino({ level, base: undefined, timestamp: false }, stream), lines };
}
