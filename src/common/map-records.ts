/**
 * What the kinds remember in their maps, encoded one way for all of them:
 * names in fixed-size, NUL-padded UTF-8 fields (record keys, the policy and
 * rule a counter slot belongs to) and records as length-prefixed JSON. Each
 * kind binds the sizes its C header declares with {@link mapRecordCodec}.
 */
import { decodeLengthPrefixed, encodeLengthPrefixed } from './length-prefixed.js';

/** Encodes `text` into `len` bytes, NUL-padded. Throws RangeError naming `what` when it does not fit with its NUL. */
export function encodeFixedString(text: string, len: number, what: string): Buffer {
  const b = Buffer.alloc(len);
  if (Buffer.byteLength(text) >= len) throw new RangeError(`${what} "${text}" is longer than ${len - 1} bytes`);
  b.write(text, 'utf8');
  return b;
}

/** Decodes a NUL-padded field of `len` bytes at `offset`. */
export function decodeFixedString(b: Buffer, offset: number, len: number): string {
  const end = b.indexOf(0, offset);
  return b.toString('utf8', offset, end < 0 || end > offset + len ? offset + len : end);
}

/** The record and name codecs of one kind's maps. */
export interface MapRecordCodec {
  /** Encodes a record key (a policy name, or a reserved name such as "@guard"). Throws RangeError when too long. */
  encodeRecordKey(name: string): Buffer;
  decodeRecordKey(k: Buffer): string;
  /** Encodes a record (JSON, length-prefixed). Throws RangeError when too large. */
  encodeRecord(json: string): Buffer;
  /** Decodes a record into its JSON text. */
  decodeRecord(v: Buffer): string;
  /** Encodes what a counter slot belongs to: two name fields back to back. */
  encodeRuleMeta(m: { policy: string; rule: string }): Buffer;
  decodeRuleMeta(v: Buffer): { policy: string; rule: string };
}

/**
 * The codecs for names of `nameLen` bytes and records of `recordLen` bytes
 * (the sizes of the kind's C structs); `what` names the record in errors.
 */
export function mapRecordCodec(nameLen: number, recordLen: number, what: string): MapRecordCodec {
  return {
    encodeRecordKey: (name) => encodeFixedString(name, nameLen, 'record name'),
    decodeRecordKey: (k) => decodeFixedString(k, 0, nameLen),
    encodeRecord: (json) => encodeLengthPrefixed(json, recordLen, what),
    decodeRecord: decodeLengthPrefixed,
    encodeRuleMeta: (m) => Buffer.concat([encodeFixedString(m.policy, nameLen, 'policy name'), encodeFixedString(m.rule, nameLen, 'rule name')]),
    decodeRuleMeta: (v) => ({ policy: decodeFixedString(v, 0, nameLen), rule: decodeFixedString(v, nameLen, nameLen) }),
  };
}
