/**
 * Maps paths in a parsed YAML/JSON document back to line and column in the
 * source text, using the node ranges kept by the `yaml` parser.
 */
import type { Document, LineCounter, Node, Pair, YAMLMap } from 'yaml';
import { yamlLib } from './yaml-lib.js';
import type { PathSegment } from './json-path.js';

/** A 1-based line and column. */
export interface Position {
  readonly line: number;
  readonly column: number;
}

function positionOf(node: Node | null | undefined, lineCounter: LineCounter): Position | undefined {
  const offset = node?.range?.[0];
  if (offset === undefined) return undefined;
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

/**
 * The pairs of a mapping by key text (the first of equal keys), built once
 * per mapping: looking each key up by a linear search made locating every
 * problem of a mapping with many keys quadratic.
 */
const pairIndexes = new WeakMap<YAMLMap, Map<string, Pair>>();

function pairOf(map: YAMLMap, key: string): Pair | undefined {
  let index = pairIndexes.get(map);
  if (index === undefined) {
    index = new Map();
    for (const pair of map.items) {
      if (!yamlLib().isScalar(pair.key)) continue;
      const text = String(pair.key.value);
      if (!index.has(text)) index.set(text, pair);
    }
    pairIndexes.set(map, index);
  }
  return index.get(key);
}

/**
 * Finds where `path` is in `doc`: the start of its value, or of its key when
 * `atKey` is set. When the path does not exist (a missing field), the
 * position of the deepest existing ancestor is returned.
 */
export function locateInDocument(
  doc: Document,
  lineCounter: LineCounter,
  path: readonly PathSegment[],
  atKey = false,
): Position {
  const start = positionOf(doc.contents, lineCounter) ?? { line: 1, column: 1 };
  let node: Node | null | undefined = doc.contents;
  let best = start;
  for (let i = 0; i < path.length; i++) {
    if (yamlLib().isAlias(node)) node = node.resolve(doc);
    const segment = path[i] as PathSegment;
    let keyNode: Node | null | undefined;
    let next: Node | null | undefined;
    if (yamlLib().isMap(node)) {
      const pair = pairOf(node as YAMLMap, String(segment));
      if (pair === undefined) return best;
      keyNode = pair.key as Node;
      next = pair.value as Node | null;
    } else if (yamlLib().isSeq(node) && typeof segment === 'number') {
      next = node.items[segment] as Node | undefined;
      if (next === undefined) return best;
    } else {
      return best;
    }
    const last = i === path.length - 1;
    if (last && atKey && keyNode !== undefined) return positionOf(keyNode, lineCounter) ?? best;
    // A key without a value ("ports:") has no value node; point at the key.
    best = positionOf(next, lineCounter) ?? positionOf(keyNode, lineCounter) ?? best;
    node = next;
  }
  return best;
}
