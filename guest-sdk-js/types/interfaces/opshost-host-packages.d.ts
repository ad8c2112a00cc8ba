//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/packages@0.1.0' {
  /**
   * Runs `npm install` (with `--dry-run` when asked) in `<componentsRoot>/<project>`.
   * `project` is a folder name (no `/` or `..`). Raises `not-found` when the project or its
   * `package.json` does not exist. A failing or missing npm is not an error: its output and
   * error text come back.
   */
  export function npmInstall(project: string, dryRun: boolean): NpmResult;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * What npm printed. Either may be absent (nothing was run for the project).
   */
  export interface NpmResult {
    output?: string,
    error?: string,
  }
}
