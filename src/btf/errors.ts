/** The errors of the BTF layer. */

/** A file or a `.BTF` section that cannot be read: not ELF, truncated, an unknown type id or kind. */
export class BtfError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BtfError';
  }
}
