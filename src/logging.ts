/**
 * Structured logging with pino. Every component takes a child logger with a
 * `component` field, and all code uses the field names in `LogField` so that
 * logs can be searched the same way everywhere. Human-readable on a terminal,
 * JSON otherwise; always on stderr, so stdout carries only command output.
 */
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';

/** Field names shared by every log line. */
export const LogField = {
  backupId: 'backupId',
  database: 'database',
  repository: 'repository',
  key: 'key',
  bytes: 'bytes',
  durationMs: 'durationMs',
  err: 'err',
} as const;

export type { Logger };

/** Creates the root logger; `level` comes from `--log-level` or `DRPLAN_LOG_LEVEL`. */
export function createLogger(level: string = process.env.DRPLAN_LOG_LEVEL ?? 'info'): Logger {
  const options = { level, base: undefined, redact: { paths: ['password', '*.password', 'url', '*.url'], censor: '[redacted]' } };
  if (process.stderr.isTTY) {
    // Loaded only for a terminal: it takes longer to load than the rest of the logger,
    // and commands run by PostgreSQL or cron never write to one.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino(options, pretty({ destination: terminalLines(), sync: true, colorize: true, ignore: 'component', messageFormat: '{component}: {msg}' }));
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}

/** Writes to stderr, erasing a progress line first so a log line never lands after it. */
function terminalLines(): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writeSync(2, `\r\x1b[2K${chunk.toString()}`);
      callback();
    },
  });
}

/** A logger that drops everything, for library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
