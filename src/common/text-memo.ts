/**
 * Memoizes a parser of short texts by the text: `parse` runs once per
 * distinct text while at most `max` results are kept (the cache is cleared
 * when full, so memory stays bounded whatever the input). The results must
 * be immutable: every caller of the same text gets the same object.
 * Validation parses the same address or prefix several times (the schema's
 * format, the kind's checks, normalization), and the daemon sees the same
 * texts on every pass.
 */
export function memoizeByText<T>(parse: (text: string) => T, max = 65536): (text: string) => T {
  const results = new Map<string, T>();
  return (text: string): T => {
    let result = results.get(text);
    if (result === undefined) {
      if (results.size >= max) results.clear();
      result = parse(text);
      results.set(text, result);
    }
    return result;
  };
}
