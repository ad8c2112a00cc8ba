//! `js_aggregate`: an example operation in JavaScript. Reads a table through the host's
//! `storage` interface (a cursor, batch by batch) and answers an aggregate of one numeric
//! attribute: count, sum, min, max, avg, optionally per value of another attribute.
//!
//! Request: `{"operation": "js_aggregate", "database": "dev", "table": "dog",
//! "attribute": "weight", "group_by": "breed"}`; `group_by` and `conditions` (a search's
//! conditions, e.g. `{"attribute": "age", "comparator": "greater-than", "value": 2}`) are
//! optional. Capabilities: `storage` (grant it: `{"js_aggregate": ["storage"]}`).

import { operation, storage, log } from '../../../guest-sdk-js/index.js';
import { aggregate } from './aggregate.js';

export const { describe, handle } = operation({
  name: 'js_aggregate',
  version: '0.1.0',
  superUserOnly: false,
  request: {
    database: 'string',
    table: 'string',
    attribute: 'string',
    group_by: 'string?',
    conditions: 'object?',
  },
  handle(ctx, req) {
    const attributes = req.group_by === undefined ? [req.attribute] : [req.attribute, req.group_by];
    // The table's records stream from a cursor; only the accumulators stay in memory.
    const records = storage.search(req.database, req.table, { where: req.conditions, attributes });
    const result = aggregate(records, req.attribute, req.group_by);
    log.debug(`js_aggregate over ${req.database}.${req.table} for ${ctx.username}: ${result.count} values`);
    return { database: req.database, table: req.table, attribute: req.attribute, ...result };
  },
});
