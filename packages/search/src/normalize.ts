const segmenter = new Intl.Segmenter('und', { granularity: 'word' });

/**
 * Normalizes text for matching: Unicode NFKC (full-width and compatibility forms become their
 * plain equivalents), lower case with the folds lower-casing misses (`ß` → `ss`, final `ς` → `σ`),
 * and the diacritics of Latin and Greek letters removed (`é` → `e`, `ü` → `u`), so that a query
 * matches whatever way a word was written.
 */
export function normalizeText(text: string): string {
  return (
    text
      .normalize('NFKC')
      .toLowerCase()
      .replaceAll('ß', 'ss')
      .replaceAll('ς', 'σ')
      .normalize('NFD')
      // Only Latin and Greek lose their accents: in kana, for instance, the voicing mark is part of the letter.
      .replace(/([\p{Script=Latin}\p{Script=Greek}])\p{Mn}+/gu, '$1')
      .normalize('NFC')
  );
}

/**
 * The words of a text, normalized. Word boundaries come from the Unicode word-break rules with
 * ICU's dictionaries (`Intl.Segmenter`), so scripts written without spaces (Chinese, Japanese,
 * Thai) split into words too.
 */
export function wordsOf(text: string): string[] {
  const words: string[] = [];
  for (const segment of segmenter.segment(normalizeText(text))) {
    if (segment.isWordLike) words.push(segment.segment);
  }
  return words;
}
