/**
 * A strict JSON (RFC 8259) syntax check that says where the first error is.
 * JSON.parse's messages do not always carry a position, and the YAML parser
 * (used for positions) accepts more than JSON (comments, trailing commas,
 * unquoted strings), so .json files are checked with this first.
 */

/** The first syntax error in a JSON text: its offset and what is wrong. */
export interface JsonSyntaxError {
  readonly offset: number;
  readonly message: string;
  /** "syntax" for text that is not JSON; "nesting" and "duplicate-key" for the optional limits of {@link JsonCheckOptions}. */
  readonly category: 'syntax' | 'nesting' | 'duplicate-key';
}

/** Limits beyond RFC 8259 (which JSON.parse does not check either). */
export interface JsonCheckOptions {
  /** Deepest nesting of arrays and objects accepted. Default 512 (deeper is refused rather than risking the stack). */
  readonly maxDepth?: number;
  /** Refuse an object with two members of the same name (after unescaping). Default false. */
  readonly uniqueKeys?: boolean;
}

const DEFAULT_MAX_DEPTH = 512;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /^[0-9A-Fa-f]{4}$/;
/** Characters of a string that end nothing and need no escape (control characters must be escaped, so they are matched here on purpose). */
// eslint-disable-next-line no-control-regex
const PLAIN_CHARS = /[^"\\\u0000-\u001f]+/y;

/**
 * Checks that `text` is exactly one JSON value (surrounded by optional white
 * space). Never throws.
 * @returns undefined if it is valid JSON, else the first error.
 */
export function findJsonSyntaxError(text: string, options: JsonCheckOptions = {}): JsonSyntaxError | undefined {
  const maxDepth = Math.min(options.maxDepth ?? DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH);
  const uniqueKeys = options.uniqueKeys === true;
  let pos = 0;
  const fail = (message: string, category: JsonSyntaxError['category'] = 'syntax'): JsonSyntaxError => ({ offset: pos, message, category });
  const describe = (): string => (pos >= text.length ? 'end of file' : JSON.stringify(text[pos]));
  const skipSpace = (): void => {
    while (pos < text.length && ' \t\n\r'.includes(text[pos] as string)) pos++;
  };
  const expect = (char: string, what: string): JsonSyntaxError | undefined => {
    skipSpace();
    if (text[pos] !== char) return fail(`expected ${what}, found ${describe()}`);
    pos++;
    return undefined;
  };
  const string = (): JsonSyntaxError | undefined => {
    pos++; // opening quote
    while (pos < text.length) {
      PLAIN_CHARS.lastIndex = pos;
      if (PLAIN_CHARS.test(text)) pos = PLAIN_CHARS.lastIndex; // a run of characters that need no check
      if (pos >= text.length) break;
      const code = text.charCodeAt(pos);
      if (code === 0x22) {
        pos++;
        return undefined;
      }
      if (code < 0x20) return fail('control character in string; write it escaped, e.g. "\\n"');
      if (code === 0x5c) {
        const next = text[pos + 1];
        if (next !== undefined && '"\\/bfnrt'.includes(next)) pos += 2;
        else if (next === 'u' && HEX4.test(text.slice(pos + 2, pos + 6))) pos += 6;
        else return fail('invalid escape sequence in string');
        continue;
      }
      pos++;
    }
    return fail('unterminated string');
  };

  const value = (depth: number): JsonSyntaxError | undefined => {
    skipSpace();
    const c = text[pos];
    if (c === '"') return string();
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) return fail(`nested more than ${maxDepth} levels deep`, 'nesting');
      const close = c === '{' ? '}' : ']';
      const names = uniqueKeys && c === '{' ? new Set<string>() : undefined;
      pos++;
      skipSpace();
      if (text[pos] === close) {
        pos++;
        return undefined;
      }
      for (;;) {
        if (c === '{') {
          skipSpace();
          if (text[pos] !== '"') return fail(`expected a property name in double quotes, found ${describe()}`);
          const keyStart = pos;
          const key = string();
          if (key !== undefined) return key;
          if (names !== undefined) {
            const name = JSON.parse(text.slice(keyStart, pos)) as string;
            if (names.has(name)) {
              pos = keyStart;
              return fail(`duplicate key ${JSON.stringify(name)}: keys must be unique`, 'duplicate-key');
            }
            names.add(name);
          }
          const colon = expect(':', '":"');
          if (colon !== undefined) return colon;
        }
        const member = value(depth + 1);
        if (member !== undefined) return member;
        skipSpace();
        if (text[pos] === close) {
          pos++;
          return undefined;
        }
        if (text[pos] !== ',') return fail(`expected "," or "${close}", found ${describe()}`);
        pos++;
        skipSpace();
        if (text[pos] === close) return fail(`trailing comma before "${close}"`);
      }
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, pos)) {
        pos += literal.length;
        return undefined;
      }
    }
    NUMBER.lastIndex = pos;
    if (NUMBER.exec(text) !== null && NUMBER.lastIndex > pos) {
      pos = NUMBER.lastIndex;
      return undefined;
    }
    return fail(`expected a value, found ${describe()}`);
  };

  const error = value(0);
  if (error !== undefined) return error;
  skipSpace();
  return pos < text.length ? fail(`unexpected ${describe()} after the JSON value`) : undefined;
}
