//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/config@0.1.0' {
  /**
   * The configuration file as JSON text, exactly as the file says (changes not yet
   * applied by a restart included).
   * Raises `internal` when the file cannot be read or parsed.
   */
  export function get(): string;
  /**
   * Sets flattened keys (`logging_level` -> `logging.level`); each value is JSON text.
   * All keys are validated first: `bad-request` names an unknown or mistyped key and
   * nothing is written. On success the old file is backed up and the new one written
   * atomically. Raises `internal` when the file cannot be written.
   */
  export function set(changes: Array<[string, string]>): void;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
}
