import { wordsOf } from './normalize.js';

/** Options of token extraction. */
export interface TokenOptions {
  /** Also index prefixes of each word, for search-as-you-type. @default true */
  prefixes?: boolean;
  /** Shortest prefix indexed. @default 2 */
  minPrefix?: number;
  /** Longest prefix indexed; longer query prefixes are cut to it. @default 12 */
  maxPrefix?: number;
  /** Most tokens kept per document. @default 256 */
  maxTokens?: number;
}

/** A whole word. */
const WORD = 'w:';
/** A word's prefix (the whole word included when short enough). */
const PREFIX = 'p:';

function prefixesOf(word: string, min: number, max: number): string[] {
  const characters = [...word];
  const prefixes: string[] = [];
  for (let length = Math.min(min, characters.length); length <= Math.min(max, characters.length); length += 1) {
    prefixes.push(PREFIX + characters.slice(0, length).join(''));
  }
  return prefixes;
}

/**
 * The search tokens of a text, for a multikey index: `w:<word>` for each normalized word and
 * `p:<prefix>` for its prefixes. Works on any MongoDB-compatible server.
 */
export function indexTokens(text: string, options: TokenOptions = {}): string[] {
  const tokens = new Set<string>();
  for (const word of wordsOf(text)) {
    tokens.add(WORD + word);
    if (options.prefixes !== false)
      for (const prefix of prefixesOf(word, options.minPrefix ?? 2, options.maxPrefix ?? 12)) tokens.add(prefix);
  }
  return [...tokens].slice(0, options.maxTokens ?? 256);
}

/** What a query needs: every token in `required` must match; matches of `exact` rank higher. */
export interface TokenQuery {
  required: string[];
  exact: string[];
}

/**
 * The tokens of a query: every word must match whole, except the last, which matches as a prefix
 * (the user may still be typing). Exact matches of the words count for relevance.
 */
export function queryTokens(query: string, options: TokenOptions = {}): TokenQuery {
  const words = wordsOf(query);
  const maxPrefix = options.maxPrefix ?? 12;
  const required = words.map((word, index) => {
    const isLast = index === words.length - 1;
    if (!isLast || options.prefixes === false) return WORD + word;
    return PREFIX + [...word].slice(0, maxPrefix).join('');
  });
  return { required: [...new Set(required)], exact: [...new Set(words.map((word) => WORD + word))] };
}
