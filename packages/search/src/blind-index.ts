import { createHmac } from 'node:crypto';
import { ConfigError } from '@caas-db/core';
import { wordsOf } from './normalize.js';

/** Options of {@link createBlindIndex}. */
export interface BlindIndexOptions {
  /** The secret key, at least 32 bytes. It never leaves the clients: the server must not hold it. */
  key: Uint8Array | string;
  /** Stored with the tokens so that a key rotation can tell old tokens from new ones. */
  keyVersion: number;
}

/** A blind index: what clients use to make messages searchable without showing the server any word. */
export interface BlindIndex {
  readonly keyVersion: number;
  /** The tokens to store with a message: one per distinct normalized word. */
  tokensOf(plaintext: string): string[];
  /** The tokens of a query; a message matches when it carries every one. */
  queryTokens(query: string): string[];
}

/**
 * Blind-index tokens for search over end-to-end encrypted messages. Each token is
 * HMAC-SHA-256(key, normalized word), cut to 128 bits and base64url-encoded: the server stores and
 * matches tokens, never words. Runs on the client, next to the encryption of the message itself.
 *
 * What the server learns (see docs/search.md): that two messages share a word (equal tokens), how
 * often a token occurs, how many distinct words a message has, and which messages a query matched.
 * What it does not learn: the words themselves, unless it can guess and test words with the key,
 * which it never has.
 *
 * @example
 * ```ts
 * const index = createBlindIndex({ key: conversationSearchKey, keyVersion: 1 });
 * await acme.messages.create({ conversation_id, sender_id, content, search_tokens: index.tokensOf(plaintext), search_key_version: 1 });
 * const hits = await search.messages({ tokens: index.queryTokens('lunch friday'), keyVersion: 1 }, { conversationId });
 * ```
 */
export function createBlindIndex(options: BlindIndexOptions): BlindIndex {
  const key = typeof options.key === 'string' ? Buffer.from(options.key, 'utf8') : Buffer.from(options.key);
  if (key.length < 32) throw new ConfigError([{ path: 'key', message: 'must be at least 32 bytes', code: 'too_small' }]);
  if (!Number.isInteger(options.keyVersion) || options.keyVersion < 1) {
    throw new ConfigError([{ path: 'keyVersion', message: 'must be a positive integer', code: 'invalid_type' }]);
  }
  const tokenOf = (word: string) => createHmac('sha256', key).update(`w:${word}`, 'utf8').digest().subarray(0, 16).toString('base64url');
  const tokens = (text: string) => [...new Set(wordsOf(text).map(tokenOf))];
  return { keyVersion: options.keyVersion, tokensOf: tokens, queryTokens: tokens };
}
