//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/certs@0.1.0' {
  /**
   * Every stored certificate, sorted by name (byte order). Private keys are never included.
   */
  export function listAll(): Array<Certificate>;
  /**
   * The same list as `list-all`, as the JSON array `list_certificates` answers (HarperDB's
   * entries: absent options left out, `updated` as `__updatedtime__`), encoded once by the
   * host per version of the store. Raises nothing but `internal`.
   */
  export function listJson(): string;
  /**
   * Adds or replaces the certificate `name`. The PEM must parse (`bad-request` otherwise).
   * A given private key must parse and match the certificate; without one, a stored key
   * that matches is looked for, deterministically, and `bad-request` raised when there is
   * none (except for authorities, which need no key). Nothing changes on failure.
   */
  export function add(name: string, certificate: string, isAuthority: boolean, privateKey: string | undefined, hosts: Array<string> | undefined): void;
  /**
   * Removes the certificate and its key file. Raises `bad-request` `<name> not found`.
   */
  export function remove(name: string): void;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * What `list_certificates` shows of a certificate, in HarperDB's formats.
   */
  export interface Details {
    /**
     * `CN=x O=y` (relative distinguished names in certificate order, space-separated).
     */
    issuer: string,
    subject: string,
    /**
     * `DNS:a, IP Address:1.2.3.4`, when the certificate has the extension.
     */
    subjectAltName?: string,
    /**
     * Uppercase hex.
     */
    serialNumber: string,
    /**
     * `Nov  2 23:39:59 2126 GMT`.
     */
    validFrom: string,
    validTo: string,
  }
  export interface Certificate {
    name: string,
    /**
     * PEM, as added.
     */
    certificate: string,
    /**
     * The key file's name under `<rootPath>/keys/`, when the host holds a matching key.
     */
    privateKeyName?: string,
    isAuthority: boolean,
    details: Details,
    /**
     * Set for certificates the host generated.
     */
    isSelfSigned?: boolean,
    uses?: Array<string>,
    updated: bigint,
  }
}
