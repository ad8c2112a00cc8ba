//! Unit tests of js_aggregate, run by Node (`node --test test/`): the aggregate alone, and the
//! whole operation against a fake `storage` interface bound in place of the host's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregate } from '../aggregate.js';
import { describe, handle } from '../index.js';
import { bind } from '../../../../guest-sdk-js/index.js';

const ctx = { username: 'admin', role: 'super_user', superUser: true, requestId: 't-1' };
const dogs = [
  { id: 1, breed: 'lab', weight: 30 },
  { id: 2, breed: 'lab', weight: 34 },
  { id: 3, breed: 'pug', weight: 8 },
  { id: 4, breed: 'pug', weight: 'heavy' },
];

test('count, sum, min, max and avg of the numeric values', () => {
  assert.deepEqual(aggregate(dogs, 'weight'), { count: 3, sum: 72, min: 8, max: 34, avg: 24, skipped: 1 });
  assert.deepEqual(aggregate([], 'weight'), { count: 0, sum: 0, min: null, max: null, avg: null, skipped: 0 });
});

test('grouped by another attribute, groups sorted by key', () => {
  const result = aggregate(dogs, 'weight', 'breed');
  assert.deepEqual(Object.keys(result.groups), ['lab', 'pug']);
  assert.deepEqual(result.groups.lab, { count: 2, sum: 64, min: 30, max: 34, avg: 32 });
  assert.deepEqual(result.groups.pug, { count: 1, sum: 8, min: 8, max: 8, avg: 8 });
});

/** A fake of the WIT storage interface: a cursor that hands out `records` in batches. */
function fakeStorage(records, seen) {
  return {
    search(database, table, query) {
      seen.push({ database, table, query });
      let at = 0;
      return {
        nextBatch(max) {
          const batch = records.slice(at, at + max).map((r) => JSON.stringify(r));
          at += batch.length;
          return batch;
        },
      };
    },
  };
}

test('the operation streams the table through storage.search', () => {
  const seen = [];
  bind({ storage: fakeStorage(dogs, seen), log: { write() {} } });
  const body = { operation: 'js_aggregate', database: 'dev', table: 'dog', attribute: 'weight', conditions: { attribute: 'weight', comparator: 'greater-than', value: 1 } };
  const answer = JSON.parse(handle(ctx, JSON.stringify(body)));
  assert.equal(answer.count, 3);
  assert.equal(answer.avg, 24);
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0].query.attributes, ['weight']);
  assert.deepEqual(seen[0].query.nodes, [{ tag: 'leaf', val: { attribute: 'weight', comparator: 'greater-than', value: '1', upper: undefined } }]);
});

test('HarperDB texts for a missing or mistyped field', () => {
  assert.throws(() => handle(ctx, JSON.stringify({ operation: 'js_aggregate', table: 'dog', attribute: 'w' })), { tag: 'bad-request', val: "'database' is required" });
  assert.throws(() => handle(ctx, JSON.stringify({ operation: 'js_aggregate', database: 1, table: 'dog', attribute: 'w' })), { tag: 'bad-request', val: "'database' must be a string" });
});

test('a host error keeps its own kind', () => {
  bind({
    storage: {
      search() {
        const e = new Error('[object Object] (see error.payload)');
        e.payload = { tag: 'not-found', val: "table 'dev.cat' does not exist" };
        throw e;
      },
    },
  });
  assert.throws(() => handle(ctx, JSON.stringify({ operation: 'js_aggregate', database: 'dev', table: 'cat', attribute: 'w' })), { tag: 'not-found', val: "table 'dev.cat' does not exist" });
});

test('describes itself for anyone to call', () => {
  assert.deepEqual(describe(), { name: 'js_aggregate', aliases: [], version: '0.1.0', superUserOnly: false, job: false });
});
