//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/jobs@0.1.0' {
  /**
   * Reports the progress of the job this call runs as. Ignored outside a job.
   */
  export function progress(done: bigint, total: bigint): void;
  /**
   * The job with this id, if it exists and the caller may see it (super_user sees every
   * job, other users their own).
   */
  export function get(id: string): Job | undefined;
  /**
   * Jobs that started within `from`..=`to` (epoch ms) and the caller may see, oldest first.
   */
  export function searchByStart(from: bigint, to: bigint): Array<Job>;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * # Variants
   * 
   * ## `"in-progress"`
   * 
   * ## `"complete"`
   * 
   * ## `"error"`
   */
  export type JobStatus = 'in-progress' | 'complete' | 'error';
  /**
   * One job record, as `get_job` shows it.
   */
  export interface Job {
    id: string,
    /**
     * The operation that runs it, e.g. `export_local`.
     */
    jobType: string,
    status: JobStatus,
    /**
     * Set when the job has finished: the success text or the error.
     */
    message?: string,
    /**
     * JSON text of the job's result object, set on success when the operation gave one.
     */
    result?: string,
    /**
     * Epoch milliseconds.
     */
    created: bigint,
    start: bigint,
    end?: bigint,
    /**
     * Who started it.
     */
    user: string,
    /**
     * Progress the job reported: units done out of `total` (0 when it never said).
     */
    done: bigint,
    total: bigint,
  }
}
