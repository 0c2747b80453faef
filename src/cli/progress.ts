/**
 * A one-line byte counter with rate on a terminal (stderr); nothing when
 * stderr is not a TTY, so logs and pipes stay clean.
 *
 * The line is redrawn with a carriage return and erased when done. Log lines
 * on a terminal erase it before they print (see logging.ts), so the two never
 * mix. cli-progress was tried first: its cursor save and restore garbled the
 * screen as soon as a log line scrolled it.
 */
import { formatBytes } from './common.js';

const CLEAR_LINE = '\r\x1b[2K';
const REDRAW_MS = 250;

export interface Progress {
  update(bytes: number): void;
  stop(): void;
}

export function startProgress(label: string): Progress {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const started = Date.now();
  let drawnAt = 0;
  let drawn = false;
  return {
    update(bytes) {
      const now = Date.now();
      if (now - drawnAt < REDRAW_MS) return;
      drawnAt = now;
      const rate = bytes / Math.max((now - started) / 1000, 0.001);
      const line = `${label}: ${formatBytes(bytes)} read, ${formatBytes(Math.round(rate))}/s`;
      // A line wider than the terminal wraps, and the carriage return then redraws only its last part.
      process.stderr.write(`${CLEAR_LINE}${line.slice(0, Math.max((process.stderr.columns ?? 80) - 1, 1))}`);
      drawn = true;
    },
    stop() {
      if (drawn) process.stderr.write(CLEAR_LINE);
    },
  };
}
