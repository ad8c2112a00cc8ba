//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/control@0.1.0' {
  /**
   * Asks the host to restart in place once the current call has answered: the
   * configuration is re-read, components are reloaded from disk, and listeners are
   * rebound only if their address changed. Calls in flight finish.
   * Raises `internal` when a restart cannot be scheduled.
   */
  export function restart(): void;
  /**
   * Restarts one service: `http_workers` (alias `http`) rebinds the HTTP listeners
   * gracefully (requests in flight finish); `clustering` and `clustering_config` are accepted
   * and do nothing while there is no clustering. Raises `bad-request` `Invalid service` for
   * any other name (case-sensitive).
   */
  export function restartService(service: string): void;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
}
