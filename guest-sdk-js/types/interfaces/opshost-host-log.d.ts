//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/log@0.1.0' {
  /**
   * Writes one line to the host log, tagged with the operation's name and the request id.
   * Never fails; lines above the configured level are dropped.
   */
  export function write(level: Level, message: string): void;
  /**
   * The server log (`<logging.root>/hdb.log`) as a JSON array of HarperDB's
   * `{"timestamp", "thread", "level", "tags", "message"}` entries. Super users only
   * (`forbidden` otherwise); `internal` if the file cannot be read.
   */
  export function read(query: LogQuery): string;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * # Variants
   * 
   * ## `"trace"`
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /**
   * `read_log`'s filters, as HarperDB takes them.
   */
  export interface LogQuery {
    /**
     * Entries to skip (after filtering and ordering).
     */
    start: bigint,
    /**
     * Entries to answer at most.
     */
    limit: bigint,
    /**
     * Only this level (`notify`, `fatal`, `error`, `warn`, `info`, `debug`, `trace`).
     */
    level?: string,
    /**
     * Epoch ms bounds, inclusive.
     */
    since?: bigint,
    until?: bigint,
    /**
     * `true` newest first, `false` oldest first, none the file's order.
     */
    descending?: boolean,
    /**
     * A text each entry's message contains.
     */
    filter?: string,
  }
}
