/**
 * Parses the text of a policy file into documents, keeping enough of the
 * syntax tree to report problems at their line and column.
 */
import jsYaml from 'js-yaml';
import type { CST, Document, LineCounter, Node } from 'yaml';
import { yamlLib } from './yaml-lib.js';
import type { PathSegment } from './json-path.js';
import { findJsonSyntaxError } from './json-syntax.js';
import type { PolicyProblem } from './problem.js';
import { locateInDocument, type Position } from './source-map.js';

/** How a file is parsed: YAML (any number of "---"-separated documents) or JSON (exactly one). */
export type PolicySyntax = 'yaml' | 'json';

/** One parsed document of a policy file. */
export interface PolicyDocument {
  /** The file, as the user named it. */
  readonly file: string;
  /** 0-based index of the document in the file. */
  readonly index: number;
  /** Where the document's content starts. */
  readonly line: number;
  readonly column: number;
  /** The document as plain data (objects, arrays, strings, numbers, booleans, null). */
  readonly value: unknown;
  /** Position of `path` (or of its deepest existing ancestor); of the key when `atKey`. */
  locate(path: readonly PathSegment[], atKey?: boolean): Position;
}

/** Result of {@link parsePolicyText}. */
export interface ParsedPolicyFile {
  readonly documents: PolicyDocument[];
  readonly problems: PolicyProblem[];
}

/** Guard against "billion laughs": the most aliases a document may expand. */
const MAX_ALIAS_COUNT = 100;

/**
 * Deepest nesting of collections accepted. Policies need about 5 levels.
 * The YAML composer recurses per level, and very deep input (about 1,000
 * levels) can crash the whole process inside V8's regexp compiler rather
 * than throw, so depth is checked on the parser's (iterative) syntax tree
 * before composing.
 */
export const MAX_NESTING_DEPTH = 64;

/** Offset of the first collection nested deeper than `limit`, if any. Iterative. */
function findExcessiveNesting(tokens: readonly CST.Token[], limit: number): number | undefined {
  const stack: [CST.Token, number][] = tokens.map((token) => [token, 0]);
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    const [token, depth] = entry;
    if (depth > limit) return token.offset;
    if (token.type === 'document' && token.value !== undefined) {
      stack.push([token.value, depth + 1]);
    } else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      for (const item of token.items) {
        if (item.key !== undefined && item.key !== null) stack.push([item.key, depth + 1]);
        if (item.value !== undefined) stack.push([item.value, depth + 1]);
      }
    }
  }
  return undefined;
}

function problemAt(file: string, position: Position, message: string, severity: 'error' | 'warning' = 'error'): PolicyProblem {
  return { file, line: position.line, column: position.column, path: '', message, severity };
}

/**
 * Duplicate keys are found by {@link findDuplicateKey}, not by the composer:
 * its check compares each key with every earlier key of the mapping, which
 * takes hours on a (4 MiB) mapping of a few hundred thousand keys. The YAML
 * 1.1 tags !!binary, !!omap, !!pairs, !!set and !!timestamp are not part of
 * the 1.2 core schema: resolved, they made a Uint8Array, Map, Set or Date
 * that validation saw as an empty mapping (`labels: !!omap [{team: web}]`
 * loaded as no labels at all); unresolved, they are a warning and the plain
 * value.
 */
const COMPOSE_OPTIONS = { prettyErrors: false, uniqueKeys: false, version: '1.2', logLevel: 'error', resolveKnownTags: false } as const;

/**
 * The first key of `doc` (in document order) that repeats an earlier key of
 * its mapping, as the key becomes a property name of the plain data: so
 * `1:` and `"1":` are the same key, as they are for js-yaml (the fast path),
 * rather than one silently replacing the other. Linear; nesting is bounded
 * by {@link MAX_NESTING_DEPTH} before composing, so the recursion is too.
 */
function findDuplicateKey(doc: Document): Node | undefined {
  let first: Node | undefined;
  const visit = (node: unknown): void => {
    if (yamlLib().isMap(node)) {
      const names = new Set<string>();
      for (const pair of node.items) {
        const key = pair.key;
        if (yamlLib().isScalar(key)) {
          const name = key.value === null ? '' : String(key.value);
          if (names.has(name) && (first === undefined || (key.range?.[0] ?? 0) < (first.range?.[0] ?? 0))) first = key;
          names.add(name);
        }
        visit(key);
        visit(pair.value);
      }
    } else if (yamlLib().isSeq(node)) {
      for (const item of node.items) visit(yamlLib().isPair(item) ? item.value : item);
    }
  };
  visit(doc.contents);
  return first;
}

/** Documents composed from a YAML text, and those left empty because they nest too deeply. */
interface ComposedDocuments {
  readonly docs: Document[];
  /** Documents whose content was too deep to compose, with the offset of the first collection too deep. */
  readonly tooDeep: Map<Document, number>;
}

/**
 * Appended to a text with syntax errors. yaml@2 ends a quoted scalar that
 * has no closing quote anywhere after it at the end of the file, over "---"
 * and "..." lines (which YAML forbids inside any scalar), so one broken
 * document took every following document with it; when a closing quote
 * follows somewhere it ends the scalar at the marker line, as it should. A
 * document end marker, then a comment holding both quotes, gives it that
 * quote without changing any document.
 */
const CLOSING_QUOTE_SENTINEL = '\n...\n#"\'\n';

/**
 * The YAML documents of `source`, or the offset and reason why they cannot
 * be composed. A document nesting more than {@link MAX_NESTING_DEPTH}
 * levels is composed empty and listed in `tooDeep`, so that it does not
 * take the other documents of the file with it; nor does a quoted scalar
 * without its closing quote (see {@link CLOSING_QUOTE_SENTINEL}). Offsets
 * of problems are within `source`.
 */
function composeDocuments(source: string): ComposedDocuments | { offset: number; reason: string } {
  try {
    let composed = composeText(source);
    // Only worth a second pass when a document marker follows a broken document: there is something to rescue.
    const broken = composed.docs.find((doc) => doc.errors.length > 0);
    const marker = /^(?:---|\.\.\.)(?:[ \t\r\n]|$)/gm;
    marker.lastIndex = (broken?.range?.[0] ?? source.length) + 1;
    if (broken !== undefined && marker.test(source)) {
      const again = composeText(source + CLOSING_QUOTE_SENTINEL);
      const docs = again.docs.filter((doc) => (doc.range?.[0] ?? 0) < source.length); // none starts in the sentinel; be safe
      for (const doc of docs) for (const e of [...doc.errors, ...doc.warnings]) e.pos = [Math.min(e.pos[0], source.length), Math.min(e.pos[1], source.length)];
      composed = { ...again, docs };
    }
    return composed;
  } catch (error) {
    // yaml's parser recurses when it closes nested block collections: thousands of levels overflow the stack.
    if (error instanceof RangeError) return { offset: deepOffset(source), reason: `nested more than ${MAX_NESTING_DEPTH} levels deep` };
    // The parser reports errors rather than throwing; be safe anyway.
    return { offset: 0, reason: (error as Error).message };
  }
}

/**
 * Where a text too deep for the parser nests past {@link MAX_NESTING_DEPTH},
 * estimated from its tokens (the lexer does not recurse): open flow
 * collections plus the "-", "?" and ":" indicators of the current line
 * (compact nesting, "- - - x") plus the indentation. 0 if no place qualifies.
 */
function deepOffset(source: string): number {
  let offset = 0;
  let flow = 0;
  let indicators = 0;
  let indent = 0;
  let lineStart = true;
  for (const token of new (yamlLib().Lexer)().lex(source)) {
    const type = yamlLib().CST.tokenType(token);
    if (type === 'doc-mode' || type === 'flow-error-end' || type === 'scalar') continue; // markers that are not text
    if (type === 'flow-map-start' || type === 'flow-seq-start') flow++;
    else if (type === 'flow-map-end' || type === 'flow-seq-end') flow = Math.max(0, flow - 1);
    else if (type === 'seq-item-ind' || type === 'explicit-key-ind' || type === 'map-value-ind') indicators++;
    if (type === 'newline') {
      indicators = 0;
      indent = 0;
      lineStart = true;
    } else {
      if (lineStart && type === 'space') indent = token.length;
      lineStart = false;
    }
    if (flow + indicators + indent / 2 > MAX_NESTING_DEPTH) return offset;
    offset += token.length;
  }
  return 0;
}

/**
 * Gives every error and warning to the document whose text holds it (one
 * at the very start of a document's "---" is about the document it ends).
 * yaml@2 hands a stray token at the start of a document ("---" then "}")
 * to the document before: that one, valid, was dropped, and the broken one
 * loaded as if the token were not there.
 */
function attributeByOffset(docs: Document[]): void {
  if (docs.length < 2) return;
  const starts = docs.map((d) => d.range?.[0] ?? 0);
  const owner = (offset: number): Document => {
    let low = 0;
    let high = docs.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((starts[mid] as number) < offset) low = mid;
      else high = mid - 1;
    }
    return docs[low] as Document;
  };
  const errors = docs.flatMap((d) => d.errors);
  const warnings = docs.flatMap((d) => d.warnings);
  for (const d of docs) {
    d.errors = [];
    d.warnings = [];
  }
  for (const e of errors) owner(e.pos[0]).errors.push(e);
  for (const w of warnings) owner(w.pos[0]).warnings.push(w);
}

function composeText(text: string): ComposedDocuments {
  const deepAt = new Map<number, number>(); // document token offset -> offset of the first collection too deep
  const tokens = Array.from(
    new (yamlLib().Parser)().parse(text),
    (token) => {
      if (token.type !== 'document') return token;
      const tooDeep = findExcessiveNesting([token], MAX_NESTING_DEPTH);
      if (tooDeep === undefined) return token;
      deepAt.set(token.offset, tooDeep);
      return { ...token, value: undefined }; // composed as an empty document
    },
  );
  const docs = Array.from(new (yamlLib().Composer)(COMPOSE_OPTIONS).compose(tokens));
  attributeByOffset(docs);
  const tooDeep = new Map<Document, number>();
  for (const doc of docs) {
    const at = deepAt.get(doc.range[0]);
    if (at !== undefined) tooDeep.set(doc, at);
  }
  return { docs, tooDeep };
}

/**
 * Source positions of the documents of one file, computed on first use by
 * parsing the text again: the syntax trees are not kept for every loaded
 * policy, since positions are only needed to report problems. With
 * `startOffset`, the document is the one whose content starts there (the
 * fast path numbers documents its own way); otherwise it is the index-th.
 */
function lazyLocator(source: string): (index: number, path: readonly PathSegment[], atKey: boolean, startOffset?: number) => Position {
  let parsed: { docs: Document[]; byStart: Map<number, Document>; lineCounter: LineCounter } | undefined;
  return (index, path, atKey, startOffset) => {
    if (parsed === undefined) {
      // Line starts from the text itself, not from the parser (which reports some inside broken block scalars one character early).
      const lineCounter = new (yamlLib().LineCounter)();
      lineCounter.addNewLine(0);
      for (let i = source.indexOf('\n'); i !== -1; i = source.indexOf('\n', i + 1)) lineCounter.addNewLine(i + 1);
      const composed = composeDocuments(source);
      const docs = 'docs' in composed ? composed.docs : [];
      // Indexed once: a file of many documents must not search them all for each problem.
      const byStart = new Map<number, Document>();
      for (const d of docs) {
        const at = d.contents?.range?.[0];
        if (at !== undefined && !byStart.has(at)) byStart.set(at, d);
      }
      parsed = { docs, byStart, lineCounter };
    }
    const doc = startOffset === undefined ? parsed.docs[index] : parsed.byStart.get(startOffset);
    return doc === undefined ? { line: 1, column: 1 } : locateInDocument(doc, parsed.lineCounter, path, atKey);
  };
}

/** 1-based line and column of offsets in `source`; the line starts are found once, each lookup is a binary search. */
function positionsIn(source: string): (offset: number) => Position {
  let lineStarts: number[] | undefined;
  return (offset) => {
    if (lineStarts === undefined) {
      lineStarts = [0];
      for (let i = source.indexOf('\n'); i !== -1; i = source.indexOf('\n', i + 1)) lineStarts.push(i + 1);
    }
    let low = 0;
    let high = lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((lineStarts[mid] as number) <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, column: offset - (lineStarts[low] as number) + 1 };
  };
}

/** A parsed document whose positions are found lazily by `locate`. */
function lazyDocument(
  file: string,
  index: number,
  start: Position,
  startOffset: number,
  value: unknown,
  locate: ReturnType<typeof lazyLocator>,
): PolicyDocument {
  return { file, index, line: start.line, column: start.column, value, locate: (path, atKey = false) => locate(index, path, atKey, startOffset) };
}

/**
 * A JSON file: exactly one strict JSON value (RFC 8259), with unique keys
 * and nesting at most {@link MAX_NESTING_DEPTH} deep, like YAML files. The
 * linear syntax check runs first, so a broken or hostile file never reaches
 * the (much slower) YAML parser, which only locates problems of valid ones.
 */
function parseJson(file: string, source: string): ParsedPolicyFile {
  const position = positionsIn(source);
  const error = findJsonSyntaxError(source, { maxDepth: MAX_NESTING_DEPTH, uniqueKeys: true });
  if (error !== undefined) {
    const what = error.category === 'syntax' ? 'JSON syntax error' : 'JSON error';
    return { documents: [], problems: [problemAt(file, position(error.offset), `${what}: ${error.message}`)] };
  }
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (e) {
    // The syntax check agrees with JSON.parse; be safe anyway.
    return { documents: [], problems: [problemAt(file, { line: 1, column: 1 }, `JSON syntax error: ${(e as Error).message}`)] };
  }
  if (value === null) return { documents: [], problems: [] };
  const startOffset = source.search(/\S/);
  return { documents: [lazyDocument(file, 0, position(startOffset), startOffset, value, lazyLocator(source))], problems: [] };
}

/**
 * The fast path for well-formed YAML files: js-yaml (YAML 1.2 core schema,
 * duplicate keys refused), many times faster than building the full syntax
 * tree. Returns undefined whenever the file is anything but plain and
 * well-formed (a parse error, anchors or aliases, tags, merge keys, nesting
 * deeper than half of {@link MAX_NESTING_DEPTH}); the caller then takes the
 * precise path, which reports every problem with its position and enforces
 * the alias limit. Positions of fast-parsed documents are computed lazily
 * with the precise parser.
 */
function fastParseYaml(file: string, source: string): ParsedPolicyFile | undefined {
  if (/[&*!][\w<]|<</.test(source)) return undefined; // anchors, aliases, tags, merge keys: the precise path handles them
  const locate = lazyLocator(source);
  const position = positionsIn(source);
  try {
    const starts: number[] = [];
    let depth = 0;
    let bail = false;
    const values: unknown[] = [];
    jsYaml.loadAll(source, (v) => values.push(v), {
      schema: jsYaml.CORE_SCHEMA,
      json: false,
      listener(event, state) {
        if (event === 'open') {
          // js-yaml parses every document before handing out values: its state counts finished documents.
          if (depth === 0) starts[(state as unknown as { documents: unknown[] }).documents.length] = state.position;
          if (++depth > MAX_NESTING_DEPTH / 2) bail = true; // deep input: let the precise path judge it
        } else if (--depth === 0) {
          // An anchor the test above missed ("&ä", "&-x"): aliases would expand here without the alias limit.
          // Checked once per document, when its top node closes: js-yaml keeps a document's anchors until
          // the next document starts (those of a speculative parse it rolls back are gone, and so are its aliases).
          for (const _ in (state as unknown as { anchorMap: object }).anchorMap) {
            bail = true;
            break;
          }
        }
      },
    });
    if (bail) return undefined;
    const documents: PolicyDocument[] = [];
    values.forEach((value, index) => {
      if (value === null || value === undefined) return;
      const startOffset = starts[index] ?? 0;
      documents.push(lazyDocument(file, index, position(startOffset), startOffset, value, locate));
    });
    return { documents, problems: [] };
  } catch {
    return undefined;
  }
}

/**
 * Parses a policy file's text. YAML files may hold several documents
 * separated by "---"; empty documents are skipped. JSON files must hold
 * exactly one JSON value. Syntax errors become problems with positions and
 * only drop the broken document, not the others. Never throws.
 * @param file the file name to report problems against.
 */
export function parsePolicyText(file: string, text: string, syntax: PolicySyntax): ParsedPolicyFile {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (syntax === 'json') return parseJson(file, source);
  return fastParseYaml(file, source) ?? parseYamlPrecisely(file, source);
}

/** The precise path: the full YAML syntax tree, every problem with its position. */
function parseYamlPrecisely(file: string, source: string): ParsedPolicyFile {
  const position = positionsIn(source);
  const documents: PolicyDocument[] = [];
  const problems: PolicyProblem[] = [];
  const composed = composeDocuments(source);
  if (!('docs' in composed)) return { documents: [], problems: [problemAt(file, position(composed.offset), `YAML error: ${composed.reason}`)] };
  const locate = lazyLocator(source);

  composed.docs.forEach((doc: Document, index: number) => {
    const tooDeep = composed.tooDeep.get(doc);
    if (tooDeep !== undefined) {
      problems.push(problemAt(file, position(tooDeep), `YAML error: nested more than ${MAX_NESTING_DEPTH} levels deep`));
      return;
    }
    for (const warning of doc.warnings) {
      problems.push(problemAt(file, position(warning.pos[0]), `YAML warning: ${warning.message}`, 'warning'));
    }
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        problems.push(problemAt(file, position(error.pos[0]), `YAML syntax error: ${error.message}`));
      }
      return;
    }
    const duplicate = findDuplicateKey(doc);
    if (duplicate !== undefined) {
      problems.push(problemAt(file, position(duplicate.range?.[0] ?? 0), 'YAML syntax error: Map keys must be unique'));
      return;
    }
    if (doc.contents === null) return;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (error) {
      const start = doc.contents.range?.[0] ?? 0;
      problems.push(problemAt(file, position(start), `YAML error: ${(error as Error).message}`));
      return;
    }
    if (value === null) return; // empty document, e.g. after a trailing "---" or only comments
    const start = position(doc.contents.range?.[0] ?? 0);
    documents.push({
      file,
      index,
      line: start.line,
      column: start.column,
      value,
      locate: (path, atKey = false) => locate(index, path, atKey),
    });
  });

  return { documents, problems };
}
