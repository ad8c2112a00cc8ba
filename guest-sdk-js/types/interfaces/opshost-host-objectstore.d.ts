//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/objectstore@0.1.0' {
  /**
   * Starts an upload. Raises `bad-request` for an invalid endpoint.
   */
  export function put(target: S3Target): Upload;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  export interface S3Target {
    accessKeyId: string,
    secretAccessKey: string,
    region: string,
    bucket: string,
    /**
     * The object key, as given.
     */
    key: string,
    /**
     * `http(s)://host:port` of an S3-compatible store; AWS when absent.
     */
    endpoint?: string,
  }
  
  export class Upload implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Appends bytes. Raises `internal` with the store's reason.
    */
    write(data: Uint8Array): void;
    /**
    * Completes the upload; returns the object's location (`s3://bucket/key`).
    */
    finish(): string;
    [Symbol.dispose](): void;
  }
}
