//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
declare module 'opshost:host/types@0.1.0' {
  /**
   * Why a call failed, named after what the caller can do about it.
   * The host maps each case to an HTTP status: 400, 401, 403, 404, 409, 500.
   */
  export type OpError = OpErrorBadRequest | OpErrorUnauthorized | OpErrorForbidden | OpErrorNotFound | OpErrorConflict | OpErrorInternal | OpErrorOther;
  /**
   * The request is wrong; the text names the field (400).
   */
  export interface OpErrorBadRequest {
    tag: 'bad-request',
    val: string,
  }
  /**
   * The caller is not logged in (401).
   */
  export interface OpErrorUnauthorized {
    tag: 'unauthorized',
    val: string,
  }
  /**
   * The caller may not do this (403).
   */
  export interface OpErrorForbidden {
    tag: 'forbidden',
    val: string,
  }
  /**
   * A named thing does not exist (404).
   */
  export interface OpErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * The request conflicts with what is stored (409).
   */
  export interface OpErrorConflict {
    tag: 'conflict',
    val: string,
  }
  /**
   * Something failed on the server side (500).
   */
  export interface OpErrorInternal {
    tag: 'internal',
    val: string,
  }
  /**
   * Any other failure; answered as 500 so a new case never forces a version bump.
   */
  export interface OpErrorOther {
    tag: 'other',
    val: string,
  }
  /**
   * What an operation says about itself when the host loads it.
   */
  export interface OperationInfo {
    /**
     * The `operation` value this component answers, e.g. `get_configuration`.
     */
    name: string,
    /**
     * Other names it answers to, e.g. `create_schema` for `create_database`.
     */
    aliases: Array<string>,
    /**
     * The component's own version (semver).
     */
    version: string,
    /**
     * Only callers whose role has `super_user: true` may call it.
     */
    superUserOnly: boolean,
    /**
     * The host answers with a job id at once and runs the call in the background.
     */
    job: boolean,
  }
  /**
   * Who is calling, as the host authenticated them.
   */
  export interface CallContext {
    /**
     * The authenticated user name.
     */
    username: string,
    /**
     * The user's role name.
     */
    role: string,
    /**
     * Whether the role has `super_user: true`.
     */
    superUser: boolean,
    /**
     * An id for this call, also written to the host log.
     */
    requestId: string,
    /**
     * For an operation that runs as a job: absent when the host asks it to check the
     * request before a job is created (it must not change anything then, and may answer
     * `{"message": ...}` to replace "Starting job with id ..."); the job's id when it runs
     * as that job. Always absent for other operations.
     */
    jobId?: string,
  }
}
