//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/filesystem@0.1.0' {
  /**
   * Checks that `folder` is an absolute path to an existing folder inside an allowed root
   * (after resolving `..` and symbolic links); returns it resolved. Raises `bad-request`
   * naming the problem; nothing is created.
   */
  export function checkFolder(folder: string): string;
  /**
   * Starts writing `<folder>/<name>`. `name` may not contain `/`, `\` or `..`; an existing
   * file of that name is replaced when the writer finishes.
   */
  export function create(folder: string, name: string): Writer;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  
  export class Writer implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Appends bytes. Raises `internal` on an I/O error.
    */
    write(data: Uint8Array): void;
    /**
    * Flushes, syncs and renames the file into place; returns its final absolute path.
    */
    finish(): string;
    [Symbol.dispose](): void;
  }
}
