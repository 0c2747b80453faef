/**
 * A byte counter with rate on a terminal (stderr); nothing when stderr is
 * not a TTY, so logs and pipes stay clean.
 */
import cliProgress from 'cli-progress';
import { formatBytes } from './common.js';

export interface Progress {
  update(bytes: number): void;
  stop(): void;
}

export function startProgress(label: string): Progress {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} {size} read, {rate}/s`, hideCursor: true, clearOnComplete: true, fps: 4 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1, 0, { size: formatBytes(0), rate: formatBytes(0) });
  return {
    update(bytes) {
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      bar.update(0, { size: formatBytes(bytes), rate: formatBytes(Math.round(bytes / seconds)) });
    },
    stop: () => bar.stop(),
  };
}
