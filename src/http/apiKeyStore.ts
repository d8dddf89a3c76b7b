/**
 * The API keys in force, replaceable without a restart: with
 * QUOTA_API_KEYS_FILE the file is re-read on SIGHUP (main.ts) and when it
 * changes (polled, so a Kubernetes secret's symlink swap is seen too). A file
 * that does not parse keeps the keys in force and logs why: a typo during a
 * rotation must not lock every client out.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { parseApiKeys, type ApiKey } from '../config.js';
import type { Logger } from '../logger.js';

export interface ApiKeyStore {
  current(): readonly ApiKey[];
  /** Re-reads the keys file (no file: nothing to do); true when new keys are in force. `reason` goes to the log. */
  reload(reason?: string): boolean;
  close(): void;
}

export function createApiKeyStore(options: {
  initial: readonly ApiKey[];
  file?: string | undefined;
  logger: Logger;
  pollMs?: number;
}): ApiKeyStore {
  const { file, logger } = options;
  let keys = options.initial;

  function reload(reason = 'asked'): boolean {
    if (!file) return false;
    try {
      const next = parseApiKeys(readFileSync(file, 'utf8'), 'QUOTA_API_KEYS_FILE');
      keys = next;
      logger.info({ file, reason, keys: next.map((k) => `${k.role}:${k.name}`) }, 'API keys reloaded');
      return true;
    } catch (err) {
      logger.error(
        { file, reason, error: (err as Error).message },
        'API keys file not reloaded; the keys in force stay',
      );
      return false;
    }
  }

  if (file) {
    watchFile(file, { interval: options.pollMs ?? 2_000, persistent: false }, (now, before) => {
      if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) reload('file changed');
    });
  }

  return {
    current: () => keys,
    reload,
    close: () => {
      if (file) unwatchFile(file);
    },
  };
}
