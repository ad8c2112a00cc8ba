//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/components@0.1.0' {
  /**
   * Checks and swaps in a component; answers JSON `{message, name, version, hash, size,
   * operations, grants}` once it serves.
   */
  export function deploy(request: DeployRequest): string;
  /**
   * JSON array: every deployed component with its versions and what serves.
   */
  export function list(): string;
  /**
   * JSON `{name, version, hash, size, grants, signature, payload}` of one version (default:
   * the one that serves), the bytes base64.
   */
  export function file(name: string, version: bigint | undefined): string;
  /**
   * Stops serving a deployed component and deletes its versions (the events stay); with
   * `replicated`, on every node of the cluster.
   */
  export function drop(name: string, replicated: boolean): string;
  /**
   * Serves a kept version again (default: the one before the serving one).
   */
  export function rollback(name: string, version: bigint | undefined): string;
  /**
   * JSON array of audit events (deploy, drop, rollback), oldest first; all, or one name's.
   */
  export function events(name: string | undefined): string;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * What to deploy.
   */
  export interface DeployRequest {
    /**
     * The component's name: the operation name it describes itself with.
     */
    name: string,
    /**
     * The component's bytes, base64.
     */
    payload: string,
    /**
     * Interfaces it may import (absent: those `operationsApi.grants` gives the name).
     */
    grants?: Array<string>,
    /**
     * A detached Ed25519 signature (base64) over the component and `grants`.
     */
    signature?: string,
    /**
     * Also deploy it on every node of the cluster (each runs the same checks); ignored
     * when clustering is off.
     */
    replicated: boolean,
  }
}
