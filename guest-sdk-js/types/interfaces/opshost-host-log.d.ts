//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
declare module 'opshost:host/log@0.1.0' {
  /**
   * Writes one line to the host log, tagged with the operation's name and the request id.
   * Never fails; lines above the configured level are dropped.
   */
  export function write(level: Level, message: string): void;
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
}
