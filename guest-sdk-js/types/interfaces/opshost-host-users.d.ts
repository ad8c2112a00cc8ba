//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/users@0.1.0' {
  /**
   * Adds a role. `permission` is HarperDB's permission JSON (`super_user`, `cluster_user`,
   * `structure_user`, or per-database `tables` with read/insert/update/delete and
   * `attribute_permissions`); it is validated (`bad-request` names the problem). `id`
   * defaults to a new UUID. Raises `conflict` when the role name exists. Returns the stored
   * role record as JSON.
   */
  export function addRole(role: string, permission: string, id: string | undefined): string;
  /**
   * Replaces a role's permission (and name, when given). Raises `not-found` for an unknown
   * id. Returns the stored role record as JSON.
   */
  export function alterRole(id: string, role: string | undefined, permission: string): string;
  /**
   * Drops a role. Raises `not-found` for an unknown id and `conflict` while a user has it.
   * Returns the dropped role's name.
   */
  export function dropRole(id: string): string;
  /**
   * Every role record as JSON, sorted by name, including the built-in `super_user` and
   * `cluster_user`.
   */
  export function listRoles(): Array<string>;
  /**
   * Adds a user. Raises `bad-request` for an empty name or password or an unknown role,
   * `conflict` when the user exists.
   */
  export function addUser(user: NewUser): void;
  /**
   * Changes a user. Raises `not-found` for an unknown user, `bad-request` for an unknown
   * role. A changed password or deactivation ends the user's existing tokens.
   */
  export function alterUser(change: UserChange): void;
  /**
   * Drops a user; their tokens stop working. Raises `not-found` for an unknown user.
   */
  export function dropUser(username: string): void;
  /**
   * One user as JSON, with its role record and without the password:
   * `{"username", "active", "role": {...}, "__createdtime__", "__updatedtime__"}`.
   */
  export function getUser(username: string): string | undefined;
  /**
   * Every user as `get-user` shows them, sorted by name.
   */
  export function listUsers(): Array<string>;
  /**
   * Checks a username and password and issues an operation and a refresh token for that
   * user. Raises `unauthorized` for a wrong password or an inactive user.
   */
  export function createTokens(username: string, password: string): Tokens;
  /**
   * Issues tokens for the caller, who has already authenticated.
   */
  export function createTokensForCaller(): Tokens;
  /**
   * Issues a new operation token from a refresh token: `refresh-token` when given, else the
   * refresh token the caller authenticated this request with. Raises `unauthorized` for an
   * invalid or expired refresh token.
   */
  export function refreshOperationToken(refreshToken: string | undefined): string;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  export interface NewUser {
    username: string,
    password: string,
    /**
     * The role's name (`role` field of the role record).
     */
    role: string,
    active: boolean,
  }
  /**
   * Changes to a user; absent fields stay as they are.
   */
  export interface UserChange {
    username: string,
    password?: string,
    role?: string,
    active?: boolean,
  }
  export interface Tokens {
    operationToken: string,
    refreshToken: string,
  }
}
