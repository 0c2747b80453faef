/**
 * Reading tar streams without writing them out: used to prove that a stored
 * archive is complete and readable.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';

/** Parses a whole tar stream and returns its number of entries; a truncated or garbled archive rejects. */
export async function countTarEntries(input: Readable): Promise<number> {
  const parser = extract();
  let entries = 0;
  parser.on('entry', (_header, stream, next) => {
    entries += 1;
    stream.on('end', next);
    stream.resume();
  });
  await pipeline(input, parser);
  return entries;
}
