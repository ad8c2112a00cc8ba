//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/cluster@0.1.0' {
  /**
   * `cluster_status` as JSON text: this node's name, whether clustering is enabled, the
   * connection to NATS, pending changes and lag, and each known node with its
   * subscriptions. Raises `internal` only on a host failure.
   */
  export function status(): string;
  /**
   * Registers or changes a remote node (`node` as above). Raises `bad-request` for a
   * malformed registration or this node's own name, and as `node-change` says.
   */
  export function setNode(node: string, change: NodeChange): void;
  /**
   * Forgets a remote node: its changes are applied in full again. Raises `not-found` when
   * it is not registered.
   */
  export function removeNode(nodeName: string): void;
  /**
   * The registered nodes, as a JSON array of registrations.
   */
  export function listNodes(): string;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * How a registration changes.
   * # Variants
   * 
   * ## `"add"`
   * 
   * A new node: raises `bad-request` when it is registered already.
   * ## `"update"`
   * 
   * An existing node's subscriptions: raises `not-found` when it is not registered.
   * ## `"upsert"`
   * 
   * Added or replaced, whichever applies.
   */
  export type NodeChange = 'add' | 'update' | 'upsert';
}
