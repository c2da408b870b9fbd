/**
 * Paths into policy documents: segments, their friendly text form
 * ("spec.ports[2]") and conversion from ajv's JSON Pointers.
 */

/** One step into a document: an object key or an array index. */
export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Formats a path the way people write it: `spec.ports[2]`,
 * `metadata.labels["app.kubernetes.io/name"]`. The empty path gives "".
 */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/**
 * Converts a JSON Pointer ("/spec/ports/2") into segments, using `root` to
 * tell array indexes (numbers) from object keys that look like numbers.
 */
export function pointerToPath(pointer: string, root: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const index = Number(token);
      path.push(index);
      node = node[index];
    } else {
      path.push(token);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[token] : undefined;
    }
  }
  return path;
}
