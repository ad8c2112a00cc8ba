//! TypeScript declarations of the SDK (index.js). The host interfaces themselves
//! (`opshost:host/storage@0.1.0`, ...) are declared in types/, generated from wit/ by jco.

/// <reference path="./types/opshost.d.ts" />

export type OpErrorKind = 'bad-request' | 'unauthorized' | 'forbidden' | 'not-found' | 'conflict' | 'internal' | 'other';

/** An error the operation answers with; `kind` is the WIT op-error case (its HTTP status). */
export class OpError extends Error {
  constructor(kind: OpErrorKind, message: string);
  kind: OpErrorKind;
}
export function badRequest(message: string): OpError;
export function forbidden(message: string): OpError;
export function notFound(message: string): OpError;
export function conflict(message: string): OpError;
export function internal(message: string): OpError;
/** Any thrown value as the WIT op-error variant. */
export function toOpError(e: unknown): import('opshost:host/types@0.1.0').OpError;

export type FieldType =
  | 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'any'
  | 'string?' | 'number?' | 'integer?' | 'boolean?' | 'object?' | 'array?' | 'any?'
  | { optional: true; type: FieldType }
  | { arrayOf: FieldType }
  | Schema;
export interface Schema { [field: string]: FieldType }
export function optional(type: FieldType): { optional: true; type: FieldType };
export function arrayOf(type: FieldType): { arrayOf: FieldType };
/** Decodes a JSON body against a schema; throws badRequest with HarperDB's texts. */
export function decode(body: string | object, schema?: Schema): Record<string, any>;

/** Who is calling, as the host authenticated them. */
export interface Context {
  username: string;
  role: string;
  superUser: boolean;
  requestId: string;
  /** Set when the call runs as a job; absent when a job operation is asked to validate. */
  jobId?: string;
}

export interface OperationDefinition<Req = Record<string, any>> {
  name: string;
  aliases?: string[];
  version?: string;
  /** Default true: only super_user roles may call it. */
  superUserOnly?: boolean;
  /** The host answers with a job id and runs the call in the background. */
  job?: boolean;
  request?: Schema;
  handle(ctx: Context, request: Req): unknown;
  validate?(ctx: Context, request: Req): string | undefined;
}

/** The `describe` and `handle` exports of the WIT world `operation`. */
export function operation<Req = Record<string, any>>(def: OperationDefinition<Req>): {
  describe(): import('opshost:host/types@0.1.0').OperationInfo;
  handle(context: import('opshost:host/types@0.1.0').CallContext, request: string): string;
};

/** Hands the host interfaces (or fakes, in unit tests) to the helpers. */
export function bind(interfaces: Record<string, unknown>): void;

export const log: Record<'trace' | 'debug' | 'info' | 'warn' | 'error', (message: string) => void>;

export type Comparator = import('opshost:host/storage@0.1.0').Comparator;
export type Where =
  | { attribute: string; comparator?: Comparator; value?: unknown; upper?: unknown }
  | { and: Where[] }
  | { or: Where[] }
  | { not: Where };
export interface SearchOptions {
  where?: Where;
  attributes?: string[];
  sort?: { attribute: string; descending?: boolean }[];
  offset?: number;
  limit?: number;
}
export interface WriteResult { written: unknown[]; skipped: unknown[] }
export interface TableInfo {
  database: string; table: string; primaryKey: string; attributes: string[];
  recordCount: number; tableSize: number; lastUpdated?: number;
}
export function flatten(where?: Where): import('opshost:host/storage@0.1.0').Node[];
export const storage: {
  search(database: string, table: string, options?: SearchOptions): Generator<Record<string, any>, void, undefined>;
  all(database: string, table: string, options?: SearchOptions): Record<string, any>[];
  get(database: string, table: string, ids: unknown[], attributes?: string[]): Record<string, any>[];
  write(database: string, table: string, mode: 'insert' | 'update' | 'upsert', records: object[]): WriteResult;
  insert(database: string, table: string, records: object[]): WriteResult;
  update(database: string, table: string, records: object[]): WriteResult;
  upsert(database: string, table: string, records: object[]): WriteResult;
  delete(database: string, table: string, ids: unknown[]): WriteResult;
  describeTable(database: string, table: string): TableInfo;
  listDatabases(): Record<string, string[]>;
  createDatabase(database: string): void;
  dropDatabase(database: string): void;
  createTable(database: string, table: string, primaryKey: string): void;
  dropTable(database: string, table: string): void;
};

export interface Job {
  id: string; jobType: string; status: 'in-progress' | 'complete' | 'error'; message?: string; result?: unknown;
  created: number; start: number; end?: number; user: string; done: number; total: number;
}
export const jobs: {
  progress(done: number, total: number): void;
  get(id: string): Job | undefined;
  searchByStart(from: number, to: number): Job[];
};
