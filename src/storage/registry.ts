/**
 * Chooses a storage backend by the scheme of a repository URL.
 */
import { ConfigError } from '../errors.js';
import type { RepositoryConfig } from '../config/schema.js';
import { FileStorage } from './file.js';
import { S3Storage } from './s3.js';
import type { Storage } from './storage.js';

type Factory = (config: RepositoryConfig) => Storage;

const factories: Record<string, Factory> = {
  'file:': (config) => new FileStorage(config.name, config.url),
  's3:': (config) => new S3Storage(config.name, config.url, { endpoint: config.endpoint, region: config.region, forcePathStyle: config.forcePathStyle }),
};

/** Opens the backend for one repository of the plan. */
export function openStorage(config: RepositoryConfig): Storage {
  const scheme = new URL(config.url).protocol;
  const factory = factories[scheme];
  if (!factory) {
    throw new ConfigError(`repository ${config.name}: unsupported URL scheme ${scheme} in ${config.url}`, {
      code: 'config.scheme',
      object: config.url,
      hint: `Use one of: ${Object.keys(factories).map((s) => `${s}//`).join(', ')}`,
    });
  }
  return factory(config);
}
