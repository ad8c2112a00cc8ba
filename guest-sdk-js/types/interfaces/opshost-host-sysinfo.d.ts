//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/sysinfo@0.1.0' {
  /**
   * The section as JSON text (an object, or an array for `table-size` and `threads`).
   * Raises `internal` when the operating system cannot answer.
   */
  export function get(section: Section): string;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * One top-level section of `system_information`.
   * # Variants
   * 
   * ## `"system"`
   * 
   * ## `"time"`
   * 
   * ## `"cpu"`
   * 
   * ## `"memory"`
   * 
   * ## `"disk"`
   * 
   * ## `"network"`
   * 
   * ## `"processes"`
   * 
   * ## `"table-size"`
   * 
   * ## `"metrics"`
   * 
   * ## `"threads"`
   */
  export type Section = 'system' | 'time' | 'cpu' | 'memory' | 'disk' | 'network' | 'processes' | 'table-size' | 'metrics' | 'threads';
}
