/**
 * Chooses a storage backend by the scheme of a repository URL.
 */
import { ConfigError } from '../errors.js';
import type { RepositoryConfig } from '../config/schema.js';
import type { Storage } from './storage.js';

type Factory = (config: RepositoryConfig) => Promise<Storage>;

// Backends load on first use: the AWS SDK alone adds about 10 MB of memory
// and 0.1 s of start-up, which a plan with only local repositories never needs.
const factories: Record<string, Factory> = {
  'file:': async (config) => new (await import('./file.js')).FileStorage(config.name, config.url),
  's3:': async (config) => {
    const { S3Storage } = await import('./s3.js');
    return new S3Storage(config.name, config.url, { endpoint: config.endpoint, region: config.region, forcePathStyle: config.forcePathStyle });
  },
};

/** Opens the backend for one repository of the plan. */
export async function openStorage(config: RepositoryConfig): Promise<Storage> {
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
