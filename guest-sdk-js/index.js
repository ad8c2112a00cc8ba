//! opshost guest SDK for JavaScript: write an Operations API operation as one `operation({...})`
//! call; `cargo xtask build-guests` turns it into a WebAssembly component (componentize-js).
//!
//! What the Rust SDK gives, in JavaScript: request decoding with HarperDB's texts
//! (`'name' is required`, `'name' must be a string`), the `describe` info, errors mapped onto
//! the WIT `op-error`, and helpers over the host interfaces (storage searches and cursors,
//! jobs, log). The host interfaces are not imported here: the build's generated entry imports
//! exactly the ones the operation's package.json lists and hands them to `bind`, so this module
//! also loads in plain Node, where unit tests `bind` fakes.

// ---------------------------------------------------------------------------------------------
// Errors

/** An error the operation answers with; `kind` is the WIT `op-error` case (HTTP status). */
export class OpError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'OpError';
    this.kind = kind;
  }
}

/** 400: the request is wrong; name the field, in HarperDB's words. */
export const badRequest = (message) => new OpError('bad-request', message);
/** 403: the caller may not do this. */
export const forbidden = (message) => new OpError('forbidden', message);
/** 404: a named thing does not exist. */
export const notFound = (message) => new OpError('not-found', message);
/** 409: the request conflicts with what is stored. */
export const conflict = (message) => new OpError('conflict', message);
/** 500: something failed on the server side. */
export const internal = (message) => new OpError('internal', message);

const KINDS = new Set(['bad-request', 'unauthorized', 'forbidden', 'not-found', 'conflict', 'internal', 'other']);

/**
 * Any thrown value as the WIT `op-error` variant (`{tag, val}`). A host call that failed throws
 * a ComponentError whose `payload` is already one: it is passed on unchanged, so a missing
 * table stays a 404. Anything else is a bug in the operation: `internal`, with its message.
 */
export function toOpError(e) {
  if (e instanceof OpError && KINDS.has(e.kind)) {
    return { tag: e.kind, val: String(e.message) };
  }
  const payload = e && typeof e === 'object' ? e.payload : undefined;
  if (payload && KINDS.has(payload.tag) && typeof payload.val === 'string') {
    return { tag: payload.tag, val: payload.val };
  }
  if (e && typeof e === 'object' && KINDS.has(e.tag) && typeof e.val === 'string') {
    return { tag: e.tag, val: e.val };
  }
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return { tag: 'internal', val: text };
}

// ---------------------------------------------------------------------------------------------
// Request decoding

/** A field that may be missing or null (it is then `undefined`). */
export function optional(type) {
  return { optional: true, type };
}

/** An array whose items are all of `type`. */
export function arrayOf(type) {
  return { arrayOf: type };
}

/** Which article HarperDB's texts use for each type. */
const NAMES = {
  string: 'a string',
  number: 'a number',
  integer: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
};

/**
 * Decodes a JSON request body against `schema` (field -> type), with the texts the Rust SDK and
 * HarperDB give: `'name' is required`, `'name' must be a string`, `'attributes.1' must be a
 * string`. Types: 'string', 'number', 'integer', 'boolean', 'object', 'array', 'any', a nested
 * schema object, `arrayOf(type)`, `optional(type)`; a trailing `?` ('number?') also makes a
 * field optional. Unknown keys are kept (the `operation` key among them); null is missing.
 */
export function decode(body, schema = {}) {
  let value;
  try {
    value = typeof body === 'string' ? JSON.parse(body) : body;
  } catch {
    throw badRequest('Request body must be a JSON object');
  }
  if (!isObject(value)) {
    throw badRequest('Request body must be a JSON object');
  }
  return decodeFields(value, schema, '');
}

function decodeFields(value, schema, prefix) {
  const out = { ...value };
  for (const [field, spec] of Object.entries(schema)) {
    const path = prefix ? `${prefix}.${field}` : field;
    const { optional: isOptional, type } = unwrap(spec);
    const present = value[field] !== undefined && value[field] !== null;
    if (!present) {
      if (!isOptional) {
        // A required field sent as null is mistyped (serde's wording), not missing.
        throw badRequest(value[field] === null ? `'${path}' must be ${typeName(type)}` : `'${path}' is required`);
      }
      out[field] = undefined;
      continue;
    }
    out[field] = check(value[field], type, path);
  }
  return out;
}

function unwrap(spec) {
  if (typeof spec === 'string' && spec.endsWith('?')) {
    return { optional: true, type: spec.slice(0, -1) };
  }
  if (spec && typeof spec === 'object' && spec.optional === true && 'type' in spec) {
    return { optional: true, type: spec.type };
  }
  return { optional: false, type: spec };
}

function typeName(type) {
  if (typeof type === 'string') return NAMES[type] ?? 'valid';
  if (type && typeof type === 'object' && 'arrayOf' in type) return 'an array';
  return 'an object';
}

function check(v, type, path) {
  const fail = () => badRequest(`'${path}' must be ${typeName(type)}`);
  if (typeof type === 'string') {
    switch (type) {
      case 'any':
        return v;
      case 'string':
        if (typeof v !== 'string') throw fail();
        return v;
      case 'number':
        if (typeof v !== 'number' || !Number.isFinite(v)) throw fail();
        return v;
      case 'integer':
        if (!Number.isInteger(v)) throw fail();
        return v;
      case 'boolean':
        if (typeof v !== 'boolean') throw fail();
        return v;
      case 'object':
        if (!isObject(v)) throw fail();
        return v;
      case 'array':
        if (!Array.isArray(v)) throw fail();
        return v;
      default:
        throw new Error(`unknown type '${type}' in the request schema of '${path}'`);
    }
  }
  if (type && typeof type === 'object' && 'arrayOf' in type) {
    if (!Array.isArray(v)) throw fail();
    return v.map((item, i) => {
      const { optional: isOptional, type: inner } = unwrap(type.arrayOf);
      if ((item === null || item === undefined) && isOptional) return undefined;
      return check(item, inner, `${path}.${i}`);
    });
  }
  if (type && typeof type === 'object') {
    if (!isObject(v)) throw fail();
    return decodeFields(v, type, path);
  }
  throw new Error(`invalid type in the request schema of '${path}'`);
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// The operation

/**
 * Defines the operation: returns the `describe` and `handle` exports of the WIT world
 * `operation`. Export them from the entry module:
 *
 *     export const { describe, handle } = operation({
 *       name: 'my_op', version: '0.1.0', superUserOnly: false,
 *       request: { name: 'string' },
 *       handle(ctx, req) { return { message: `hello ${req.name}, from ${ctx.username}` }; },
 *     });
 *
 * `handle` returns the response (any JSON value) or throws: an `OpError` (badRequest(...), ...)
 * becomes that status, a failed host call keeps its own, anything else is a 500. A `job: true`
 * operation is called first without `ctx.jobId` to check the request (`validate`, changing
 * nothing; it may return a text that replaces "Starting job with id ..."), then as the job.
 */
export function operation(def) {
  if (!def || typeof def.name !== 'string' || typeof def.handle !== 'function') {
    throw new Error('operation({...}) needs a name (string) and a handle(ctx, request) function');
  }
  const info = {
    name: def.name,
    aliases: [...(def.aliases ?? [])],
    version: def.version ?? '0.1.0',
    superUserOnly: def.superUserOnly ?? true,
    job: def.job ?? false,
  };
  return {
    // Called once at load, in a sandbox where every import traps: constants only.
    describe() {
      return { ...info, aliases: [...info.aliases] };
    },
    handle(context, request) {
      const ctx = {
        username: context.username,
        role: context.role,
        superUser: context.superUser,
        requestId: context.requestId,
        jobId: context.jobId ?? undefined,
      };
      try {
        const req = decode(request, def.request ?? {});
        if (info.job && ctx.jobId === undefined) {
          const message = def.validate ? def.validate(ctx, req) : undefined;
          return JSON.stringify({ message: message ?? null });
        }
        const response = def.handle(ctx, req);
        return JSON.stringify(response === undefined ? null : response, bigintsAsNumbers);
      } catch (e) {
        // componentize-js answers `err(...)` of a result when the export throws the variant.
        throw toOpError(e);
      }
    },
  };
}

/** JSON.stringify replacer: host counters come as BigInt (u64), which JSON cannot hold. */
function bigintsAsNumbers(_key, v) {
  return typeof v === 'bigint' ? Number(v) : v;
}

// ---------------------------------------------------------------------------------------------
// Host interfaces

const bound = {};

/**
 * Hands the host interfaces to the helpers below. The build's generated entry calls it with
 * the modules of the interfaces the operation imports; unit tests call it with fakes.
 */
export function bind(interfaces) {
  Object.assign(bound, interfaces);
}

function host(name) {
  const module = bound[name];
  if (!module) {
    throw internal(`this operation does not import '${name}': add it to "opshost": {"imports": [...]} in its package.json (and grant it)`);
  }
  return module;
}

/** Lines in the host log, tagged with the operation and the request id. Never throws. */
export const log = {
  trace: (message) => write('trace', message),
  debug: (message) => write('debug', message),
  info: (message) => write('info', message),
  warn: (message) => write('warn', message),
  error: (message) => write('error', message),
};

function write(level, message) {
  const module = bound.log;
  if (module) module.write(level, String(message));
}

/** How many records a cursor step fetches. */
const BATCH = 256;

/** The WIT `comparator` cases; anything else is a bad request, not a trap in the bindings. */
const COMPARATORS = new Set([
  'equals', 'not-equal', 'contains', 'starts-with', 'ends-with', 'greater-than', 'greater-than-equal',
  'less-than', 'less-than-equal', 'between', 'exists', 'is-null',
]);

/**
 * A search's condition tree in a friendly shape, flattened into the WIT `query.nodes` list:
 * a leaf `{attribute, comparator, value, upper}` (comparator as in the WIT: 'equals',
 * 'greater-than', 'between', ...; values are plain JS values) or a group `{and: [...]}`,
 * `{or: [...]}`, `{not: condition}`.
 */
export function flatten(where) {
  const nodes = [];
  const add = (c) => {
    const index = nodes.length;
    nodes.push(null);
    if (c.and || c.or) {
      const children = (c.and ?? c.or).map(add);
      nodes[index] = { tag: 'group', val: { logic: c.and ? 'and' : 'or', children } };
    } else if (c.not) {
      nodes[index] = { tag: 'group', val: { logic: 'not', children: [add(c.not)] } };
    } else {
      if (typeof c.attribute !== 'string') throw badRequest("a condition needs an 'attribute'");
      const comparator = c.comparator ?? 'equals';
      if (!COMPARATORS.has(comparator)) {
        throw badRequest(`'${c.attribute}': unknown comparator '${comparator}' (one of ${[...COMPARATORS].join(', ')})`);
      }
      nodes[index] = {
        tag: 'leaf',
        val: {
          attribute: c.attribute,
          comparator,
          value: JSON.stringify(c.value ?? null),
          upper: c.upper === undefined ? undefined : JSON.stringify(c.upper),
        },
      };
    }
    return index;
  };
  if (where) add(where);
  return nodes;
}

/** Records and tables through the host's `storage` interface. */
export const storage = {
  /**
   * The records matching `where` (all without it), as a lazy iterator over cursor batches:
   * a table never has to fit in memory. Options: attributes (['*']), sort ([{attribute,
   * descending}]), offset, limit.
   */
  *search(database, table, { where, attributes = ['*'], sort = [], offset = 0, limit } = {}) {
    const query = {
      nodes: flatten(where),
      attributes,
      sort: sort.map((s) => ({ attribute: s.attribute, descending: !!s.descending })),
      offset: BigInt(offset),
      limit: limit === undefined ? undefined : BigInt(limit),
    };
    const cursor = host('storage').search(database, table, query);
    try {
      for (;;) {
        const batch = cursor.nextBatch(BATCH);
        if (batch.length === 0) return;
        for (const text of batch) yield JSON.parse(text);
      }
    } finally {
      // Frees the host's cursor at once instead of at the end of the call.
      if (typeof cursor[Symbol.dispose] === 'function') cursor[Symbol.dispose]();
    }
  },
  /** The matching records as an array (for small results). */
  all(database, table, options) {
    return [...storage.search(database, table, options)];
  },
  /** Records by primary key, in the order asked, missing ones left out. */
  get(database, table, ids, attributes = ['*']) {
    return host('storage').get(database, table, ids.map((id) => JSON.stringify(id)), attributes).map((t) => JSON.parse(t));
  },
  /** Writes records ('insert' | 'update' | 'upsert'); answers the written and skipped keys. */
  write(database, table, mode, records) {
    const r = host('storage').write(database, table, mode, records.map((r) => JSON.stringify(r)));
    return { written: r.written.map((k) => JSON.parse(k)), skipped: r.skipped.map((k) => JSON.parse(k)) };
  },
  insert: (database, table, records) => storage.write(database, table, 'insert', records),
  update: (database, table, records) => storage.write(database, table, 'update', records),
  upsert: (database, table, records) => storage.write(database, table, 'upsert', records),
  /** Deletes by primary key; missing keys are reported as skipped. */
  delete(database, table, ids) {
    const r = host('storage').delete(database, table, ids.map((id) => JSON.stringify(id)));
    return { written: r.written.map((k) => JSON.parse(k)), skipped: r.skipped.map((k) => JSON.parse(k)) };
  },
  /** `describe_table`'s view of a table, with plain numbers. */
  describeTable(database, table) {
    const t = host('storage').describeTable(database, table);
    return {
      database: t.database,
      table: t.table,
      primaryKey: t.primaryKey,
      attributes: t.attributes,
      recordCount: Number(t.recordCount),
      tableSize: Number(t.tableSize),
      lastUpdated: t.lastUpdated === undefined ? undefined : Number(t.lastUpdated),
    };
  },
  /** `{database: [table, ...]}` for every user database. */
  listDatabases() {
    return Object.fromEntries(host('storage').listDatabases());
  },
  createDatabase: (database) => host('storage').createDatabase(database),
  dropDatabase: (database) => host('storage').dropDatabase(database),
  createTable: (database, table, primaryKey) => host('storage').createTable(database, table, primaryKey),
  dropTable: (database, table) => host('storage').dropTable(database, table),
};

/** Background jobs through the host's `jobs` interface. */
export const jobs = {
  /** Reports the progress of the job this call runs as (ignored outside a job). */
  progress(done, total) {
    host('jobs').progress(BigInt(done), BigInt(total));
  },
  /** The job with this id, or undefined; times in epoch milliseconds as numbers. */
  get(id) {
    const job = host('jobs').get(id);
    return job === undefined || job === null ? undefined : plainJob(job);
  },
  /** Jobs that started within from..=to (epoch ms), oldest first. */
  searchByStart(from, to) {
    return host('jobs').searchByStart(BigInt(from), BigInt(to)).map(plainJob);
  },
};

function plainJob(j) {
  return {
    id: j.id,
    jobType: j.jobType,
    status: j.status,
    message: j.message ?? undefined,
    result: j.result === undefined || j.result === null ? undefined : JSON.parse(j.result),
    created: Number(j.created),
    start: Number(j.start),
    end: j.end === undefined || j.end === null ? undefined : Number(j.end),
    user: j.user,
    done: Number(j.done),
    total: Number(j.total),
  };
}
