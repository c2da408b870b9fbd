/**
 * Parses the text of a policy file into documents, keeping enough of the
 * syntax tree to report problems at their line and column.
 */
import jsYaml from 'js-yaml';
import { Composer, LineCounter, Parser, type CST, type Document } from 'yaml';
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

const COMPOSE_OPTIONS = { prettyErrors: false, uniqueKeys: true, version: '1.2', logLevel: 'error' } as const;

/** The YAML documents of `source`, or the offset and reason why they cannot be composed. */
function composeDocuments(source: string, lineCounter: LineCounter): Document[] | { offset: number; reason: string } {
  try {
    const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(source));
    const tooDeep = findExcessiveNesting(tokens, MAX_NESTING_DEPTH);
    if (tooDeep !== undefined) return { offset: tooDeep, reason: `nested more than ${MAX_NESTING_DEPTH} levels deep` };
    return Array.from(new Composer(COMPOSE_OPTIONS).compose(tokens));
  } catch (error) {
    // The parser reports errors rather than throwing; be safe anyway.
    return { offset: 0, reason: (error as Error).message };
  }
}

/**
 * Source positions of the documents of one file, computed on first use by
 * parsing the text again: the syntax trees are not kept for every loaded
 * policy, since positions are only needed to report problems. With
 * `startOffset`, the document is the one whose content starts there (the
 * fast path numbers documents its own way); otherwise it is the index-th.
 */
function lazyLocator(source: string): (index: number, path: readonly PathSegment[], atKey: boolean, startOffset?: number) => Position {
  let parsed: { docs: Document[]; lineCounter: LineCounter } | undefined;
  return (index, path, atKey, startOffset) => {
    if (parsed === undefined) {
      const lineCounter = new LineCounter();
      const docs = composeDocuments(source, lineCounter);
      parsed = { docs: Array.isArray(docs) ? docs : [], lineCounter };
    }
    const doc =
      startOffset === undefined ? parsed.docs[index] : parsed.docs.find((d) => d.contents?.range?.[0] === startOffset);
    return doc === undefined ? { line: 1, column: 1 } : locateInDocument(doc, parsed.lineCounter, path, atKey);
  };
}

/** 1-based line and column of `offset` in `source`. */
function positionOf(source: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = source.indexOf('\n'); i !== -1 && i < offset; i = source.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * The fast path for well-formed files: JSON.parse for JSON, js-yaml (YAML
 * 1.2 core schema, duplicate keys refused) for YAML — both many times faster
 * than building the full syntax tree. Returns undefined whenever the file is
 * anything but plain and well-formed (a parse error, anchors or aliases,
 * nesting deeper than {@link MAX_NESTING_DEPTH}); the caller then takes the
 * precise path, which reports every problem with its position. Positions of
 * fast-parsed documents are computed lazily with the precise parser.
 */
function fastParse(file: string, source: string, syntax: PolicySyntax): ParsedPolicyFile | undefined {
  const locate = lazyLocator(source);
  const make = (index: number, startOffset: number, value: unknown): PolicyDocument => {
    const start = positionOf(source, startOffset);
    return { file, index, line: start.line, column: start.column, value, locate: (path, atKey = false) => locate(index, path, atKey, startOffset) };
  };
  try {
    if (syntax === 'json') {
      const value: unknown = JSON.parse(source);
      if (value === null) return { documents: [], problems: [] };
      return { documents: [make(0, source.search(/\S/), value)], problems: [] };
    }
    if (/[&*!][\w<]|<</.test(source)) return undefined; // anchors, aliases, tags, merge keys: the precise path handles them
    const starts: number[] = [];
    let depth = 0;
    let tooDeep = false;
    const values: unknown[] = [];
    jsYaml.loadAll(source, (v) => values.push(v), {
      schema: jsYaml.CORE_SCHEMA,
      json: false,
      listener(event, state) {
        if (event === 'open') {
          // js-yaml parses every document before handing out values: its state counts finished documents.
          if (depth === 0) starts[(state as unknown as { documents: unknown[] }).documents.length] = state.position;
          if (++depth > MAX_NESTING_DEPTH / 2) tooDeep = true; // deep input: let the precise path judge it
        } else depth--;
      },
    });
    if (tooDeep) return undefined;
    const documents: PolicyDocument[] = [];
    values.forEach((value, index) => {
      if (value === null || value === undefined) return;
      documents.push(make(index, starts[index] ?? 0, value));
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
  const fast = fastParse(file, source, syntax);
  if (fast) return fast;
  return parsePrecisely(file, source, syntax);
}

/** The precise path: the full YAML syntax tree, every problem with its position. */
function parsePrecisely(file: string, source: string, syntax: PolicySyntax): ParsedPolicyFile {
  const lineCounter = new LineCounter();
  const position = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const documents: PolicyDocument[] = [];
  const problems: PolicyProblem[] = [];
  const what = syntax === 'json' ? 'JSON' : 'YAML';
  const fail = (offset: number, message: string): ParsedPolicyFile => ({
    documents: [],
    problems: [problemAt(file, position(offset), message)],
  });
  const yamlDocs = composeDocuments(source, lineCounter);
  if (!Array.isArray(yamlDocs)) return fail(yamlDocs.offset, `${what} error: ${yamlDocs.reason}`);
  if (syntax === 'json') {
    const jsonError = findJsonSyntaxError(source);
    if (jsonError !== undefined) return fail(jsonError.offset, `JSON syntax error: ${jsonError.message}`);
  }
  const locate = lazyLocator(source);

  yamlDocs.forEach((doc: Document, index: number) => {
    for (const warning of doc.warnings) {
      problems.push(problemAt(file, position(warning.pos[0]), `${what} warning: ${warning.message}`, 'warning'));
    }
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        problems.push(problemAt(file, position(error.pos[0]), `${what} syntax error: ${error.message}`));
      }
      return;
    }
    if (doc.contents === null) return;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (error) {
      const start = doc.contents.range?.[0] ?? 0;
      problems.push(problemAt(file, position(start), `${what} error: ${(error as Error).message}`));
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
