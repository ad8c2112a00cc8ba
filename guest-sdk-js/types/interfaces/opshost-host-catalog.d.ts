//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
declare module 'opshost:host/catalog@0.1.0' {
  /**
   * One JSON object per component file, sorted by operation name: `{name, aliases, version,
   * source, builtin, hash, grants, loaded_at, status ("serving" | "failed" | "removed"),
   * last_error, stats: {calls, errors, latency_ms: {p50, p90, p99}}}`.
   */
  export function operations(): Array<string>;
}
