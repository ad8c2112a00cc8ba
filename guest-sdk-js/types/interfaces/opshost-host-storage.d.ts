//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./opshost-host-types.d.ts" />
declare module 'opshost:host/storage@0.1.0' {
  /**
   * Creates a database. Raises `bad-request` for an invalid name or one that exists.
   */
  export function createDatabase(database: string): void;
  /**
   * Drops a database and all its tables. Raises `not-found` when it does not exist.
   */
  export function dropDatabase(database: string): void;
  /**
   * Creates a table (and its database if missing). Raises `bad-request` for invalid names
   * or an existing table.
   */
  export function createTable(database: string, table: string, primaryKey: string): void;
  /**
   * Drops a table and its indexes. Raises `not-found` when it does not exist.
   */
  export function dropTable(database: string, table: string): void;
  /**
   * Every user database (not `system`) with its tables' names, sorted.
   */
  export function listDatabases(): Array<[string, Array<string>]>;
  /**
   * One table's description. Raises `not-found` for an unknown database or table.
   */
  export function describeTable(database: string, table: string): TableInfo;
  /**
   * Writes a batch of records (JSON objects) atomically and durably. Every record is
   * validated first: `bad-request` names the problem and nothing is written. Raises
   * `not-found` for an unknown table. Records without a primary key get a UUID (insert,
   * upsert).
   */
  export function write(database: string, table: string, mode: WriteMode, records: Array<string>): WriteResult;
  /**
   * `write` for records given as one JSON array text (`[{"id": 1}, ...]`, a request's own
   * bytes): no string per record on either side. Raises `bad-request` when the text is not a
   * JSON array, then as `write`.
   */
  export function writeText(database: string, table: string, mode: WriteMode, records: string): WriteSummary;
  /**
   * Deletes records by primary key (JSON text); missing keys are reported as skipped.
   */
  export { _delete as delete };
  function _delete(database: string, table: string, ids: Array<string>): WriteResult;
  /**
   * Records by primary key, in the order asked, missing ones left out, projected onto
   * `attributes` (`["*"]` for all). Raises `not-found` for an unknown table and
   * `bad-request` for an unknown attribute.
   */
  export function get(database: string, table: string, ids: Array<string>, attributes: Array<string>): Array<string>;
  /**
   * Starts a search. Raises `not-found` for an unknown table and `bad-request` for an
   * unknown attribute or a malformed query.
   */
  export function search(database: string, table: string, query: Query): Cursor;
  /**
   * The table's audit log as JSON text in HarperDB's `read_audit_log` shape. `search-type`
   * is `timestamp` (or empty), `username` or `hash_value`; `search-values` are JSON texts
   * (`[]` all, `[from]`, `[from, to]` epoch ms for `timestamp`). Super users only
   * (`forbidden` otherwise). Raises `not-found` for an unknown table and `bad-request` for
   * a bad search or an answer too large (narrow the time range).
   */
  export function readAuditLog(database: string, table: string, searchType: string, searchValues: Array<string>): string;
  /**
   * Deletes the table's audit entries older than `timestamp` (epoch ms); returns how many.
   * Super users only. Raises `not-found` for an unknown table.
   */
  export function deleteAuditLogBefore(database: string, table: string, timestamp: number): bigint;
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  /**
   * How a batch of records is written.
   * # Variants
   * 
   * ## `"insert"`
   * 
   * Add new records; a record whose primary key exists is skipped.
   * ## `"update"`
   * 
   * Merge attributes into existing records; a missing key is skipped.
   * ## `"upsert"`
   * 
   * Merge into the existing record, or add it.
   */
  export type WriteMode = 'insert' | 'update' | 'upsert';
  /**
   * What a write or delete did. Keys are JSON text (`5`, `"abc"`).
   */
  export interface WriteResult {
    written: Array<string>,
    skipped: Array<string>,
  }
  /**
   * What `write-text` did: the keys as one JSON array text each (`[5,"abc"]`), and how many.
   */
  export interface WriteSummary {
    written: string,
    writtenCount: number,
    skipped: string,
    skippedCount: number,
  }
  /**
   * A table as `describe_table` shows it.
   */
  export interface TableInfo {
    database: string,
    table: string,
    primaryKey: string,
    /**
     * Every attribute ever written, primary key included, sorted.
     */
    attributes: Array<string>,
    recordCount: bigint,
    /**
     * Approximate bytes on disk of the records and their indexes.
     */
    tableSize: bigint,
    /**
     * `__updatedtime__` of the most recently written record, if any.
     */
    lastUpdated?: bigint,
    /**
     * Whether changes to the table are recorded in its audit log (`logging.auditLog`).
     */
    audit: boolean,
    /**
     * Approximate bytes of the table's audit log.
     */
    auditSize: bigint,
  }
  /**
   * Comparison of one attribute against a JSON value. Matching is type-sensitive:
   * `"3"` never equals `3`.
   * # Variants
   * 
   * ## `"equals"`
   * 
   * ## `"not-equal"`
   * 
   * ## `"contains"`
   * 
   * ## `"starts-with"`
   * 
   * ## `"ends-with"`
   * 
   * ## `"greater-than"`
   * 
   * ## `"greater-than-equal"`
   * 
   * ## `"less-than"`
   * 
   * ## `"less-than-equal"`
   * 
   * ## `"between"`
   * 
   * `value` <= attribute <= `upper`.
   * ## `"exists"`
   * 
   * The attribute is present and not null (`value` is ignored).
   * ## `"is-null"`
   * 
   * The attribute is missing or null (`value` is ignored).
   */
  export type Comparator = 'equals' | 'not-equal' | 'contains' | 'starts-with' | 'ends-with' | 'greater-than' | 'greater-than-equal' | 'less-than' | 'less-than-equal' | 'between' | 'exists' | 'is-null';
  export interface Condition {
    attribute: string,
    comparator: Comparator,
    /**
     * JSON text.
     */
    value: string,
    /**
     * JSON text, for `between`.
     */
    upper?: string,
  }
  /**
   * # Variants
   * 
   * ## `"and"`
   * 
   * ## `"or"`
   * 
   * ## `"not"`
   */
  export type Logic = 'and' | 'or' | 'not';
  /**
   * Children are indexes into `query.nodes`. `not` takes exactly one child.
   */
  export interface Group {
    logic: Logic,
    children: Uint32Array,
  }
  /**
   * WIT has no recursive types, so a condition tree travels as a flat list of nodes.
   */
  export type Node = NodeLeaf | NodeGroup;
  export interface NodeLeaf {
    tag: 'leaf',
    val: Condition,
  }
  export interface NodeGroup {
    tag: 'group',
    val: Group,
  }
  export interface SortKey {
    attribute: string,
    descending: boolean,
  }
  /**
   * A search. The host plans it onto the indexes and streams the matches.
   */
  export interface Query {
    /**
     * `nodes[0]` is the root; an empty list matches every record.
     */
    nodes: Array<Node>,
    /**
     * The projection: attribute names, or `["*"]` for every attribute.
     */
    attributes: Array<string>,
    sort: Array<SortKey>,
    offset: bigint,
    limit?: bigint,
  }
  
  export class Cursor implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * Up to `max` records as compact JSON objects (no whitespace); an empty list means
    * the end.
    * Raises `internal` if the store fails mid-way.
    */
    nextBatch(max: number): Array<string>;
    /**
    * The records `next-batch` would give, in one text: each compact JSON object followed
    * by a newline (compact JSON has none inside); empty means the end. One string per page
    * instead of one per record, for readers that copy records through (exports).
    */
    nextPage(max: number): string;
    [Symbol.dispose](): void;
  }
}
