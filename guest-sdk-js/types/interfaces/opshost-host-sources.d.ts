//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-objectstore.d.ts" />
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/sources@0.1.0' {
  /**
   * Opens the regular file `path` (absolute) for reading. It must lie inside an import root
   * after resolving `..` and symbolic links, and its last component may not be a symbolic
   * link. Raises `bad-request` naming the path otherwise (HarperDB's `No such file or
   * directory <path>` when it does not exist).
   */
  export function openFile(path: string): Source;
  /**
   * Starts an http(s) GET of `url` (connect, read and total timeouts; size cap
   * `operationsApi.importMaxSizeMB`). Raises `bad-request` with HarperDB's texts for a
   * status other than 200 or a content type that is not CSV-like.
   */
  export function openUrl(url: string): Source;
  /**
   * Opens the S3 object `target.key` with the target's credentials. Raises `bad-request`
   * for invalid settings, a missing bucket or object, and `internal` with the store's reason.
   */
  export function openS3(target: S3Target): Source;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  export type S3Target = import('opshost:host/objectstore@0.1.0').S3Target;
  
  export class Source implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Up to `max` bytes (at most 1 MiB); an empty list means the end. Raises `bad-request`
    * when the input passes its size cap and `internal` on an I/O or network failure.
    */
    read(max: number): Uint8Array;
    /**
    * The input's size in bytes when known (a file, an S3 object, a sized download).
    */
    size(): bigint | undefined;
    [Symbol.dispose](): void;
  }
}
