//! Unit tests of the SDK, run by Node (`node --test test/`): decoding texts, error mapping,
//! describe/handle, job validation, the condition tree and the storage/jobs helpers over fakes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arrayOf, badRequest, bind, decode, flatten, jobs, notFound, operation, optional, storage, toOpError } from '../index.js';

const ctx = { username: 'ada', role: 'r', superUser: false, requestId: 'x-1', jobId: undefined };
const bad = (text) => ({ tag: 'bad-request', val: text });

test("decoding answers HarperDB's texts, as the Rust SDK does", () => {
  const schema = { name: 'string', attributes: arrayOf('string'), flag: 'boolean?', count: optional('number'), nested: { inner: 'integer?' } };
  const ok = { name: 'a', attributes: [] };
  const err = (body) => {
    try {
      decode(JSON.stringify(body), schema);
    } catch (e) {
      return toOpError(e);
    }
    assert.fail(`decoded ${JSON.stringify(body)}`);
  };
  assert.deepEqual(err({ attributes: [] }), bad("'name' is required"));
  assert.deepEqual(err({ name: 1, attributes: [] }), bad("'name' must be a string"));
  assert.deepEqual(err({ name: null, attributes: [] }), bad("'name' must be a string"));
  assert.deepEqual(err({ ...ok, attributes: 'x' }), bad("'attributes' must be an array"));
  assert.deepEqual(err({ ...ok, attributes: ['ok', 3] }), bad("'attributes.1' must be a string"));
  assert.deepEqual(err({ ...ok, flag: 'yes' }), bad("'flag' must be a boolean"));
  assert.deepEqual(err({ ...ok, count: 'x' }), bad("'count' must be a number"));
  assert.deepEqual(err({ ...ok, nested: [] }), bad("'nested' must be an object"));
  assert.deepEqual(err({ ...ok, nested: { inner: 1.5 } }), bad("'nested.inner' must be a number"));
  assert.throws(() => decode('[1]', {}), { message: 'Request body must be a JSON object' });
  const r = decode(JSON.stringify({ operation: 'x', ...ok, flag: null, other: 1, nested: {} }), schema);
  assert.equal(r.flag, undefined);
  assert.equal(r.other, 1, 'unknown keys are kept');
});

test('describe returns constants; handle answers JSON or the op-error variant', () => {
  const op = operation({
    name: 'my_op',
    aliases: ['my_alias'],
    superUserOnly: false,
    request: { name: 'string' },
    handle(c, req) {
      if (req.name === 'missing') throw notFound("'missing' does not exist");
      if (req.name === 'bug') null.boom;
      return { hello: req.name, by: c.username, big: 5n };
    },
  });
  assert.deepEqual(op.describe(), { name: 'my_op', aliases: ['my_alias'], version: '0.1.0', superUserOnly: false, job: false });
  assert.deepEqual(JSON.parse(op.handle(ctx, '{"operation":"my_op","name":"x"}')), { hello: 'x', by: 'ada', big: 5 });
  assert.throws(() => op.handle(ctx, '{"operation":"my_op"}'), bad("'name' is required"));
  assert.throws(() => op.handle(ctx, '{"name":"missing"}'), { tag: 'not-found', val: "'missing' does not exist" });
  assert.throws(() => op.handle(ctx, '{"name":"bug"}'), (e) => e.tag === 'internal' && e.val.startsWith('TypeError'));
  assert.equal(operation({ name: 'n', handle() {} }).describe().superUserOnly, true, 'super_user only by default');
});

test('a job operation validates first, then runs as the job', () => {
  const runs = [];
  const op = operation({
    name: 'my_job',
    job: true,
    validate: (_c, req) => (req.quiet ? undefined : 'checked'),
    handle: (c) => {
      runs.push(c.jobId);
      return { message: 'done' };
    },
  });
  assert.deepEqual(JSON.parse(op.handle(ctx, '{}')), { message: 'checked' });
  assert.deepEqual(JSON.parse(op.handle(ctx, '{"quiet":true}')), { message: null });
  assert.deepEqual(runs, []);
  assert.deepEqual(JSON.parse(op.handle({ ...ctx, jobId: 'j1' }, '{}')), { message: 'done' });
  assert.deepEqual(runs, ['j1']);
});

test('host errors keep their kind; unknown throws become internal', () => {
  const hostError = Object.assign(new Error('[object Object] (see error.payload)'), { payload: { tag: 'conflict', val: 'exists' } });
  assert.deepEqual(toOpError(hostError), { tag: 'conflict', val: 'exists' });
  assert.deepEqual(toOpError(badRequest('x')), bad('x'));
  assert.deepEqual(toOpError('text'), { tag: 'internal', val: 'text' });
});

test('condition trees flatten into the WIT node list, values as JSON text', () => {
  const nodes = flatten({ and: [{ attribute: 'age', comparator: 'between', value: 1, upper: 5 }, { not: { attribute: 'name', value: 'x' } }] });
  assert.deepEqual(nodes, [
    { tag: 'group', val: { logic: 'and', children: [1, 2] } },
    { tag: 'leaf', val: { attribute: 'age', comparator: 'between', value: '1', upper: '5' } },
    { tag: 'group', val: { logic: 'not', children: [3] } },
    { tag: 'leaf', val: { attribute: 'name', comparator: 'equals', value: '"x"', upper: undefined } },
  ]);
  assert.deepEqual(flatten(undefined), []);
});

test('storage helpers: a lazy cursor walk, JSON keys, plain numbers', () => {
  const batches = [];
  const rows = Array.from({ length: 600 }, (_, i) => ({ id: i }));
  bind({
    storage: {
      search(_db, _table, query) {
        assert.equal(typeof query.offset, 'bigint');
        let at = 0;
        return { nextBatch: (max) => { batches.push(max); const b = rows.slice(at, at + max).map((r) => JSON.stringify(r)); at += b.length; return b; } };
      },
      write: (_db, _t, mode, records) => ({ written: records.map((r) => JSON.stringify(JSON.parse(r).id)), skipped: [mode === 'insert' ? '"k"' : '1'].slice(0, 1) }),
      describeTable: () => ({ database: 'd', table: 't', primaryKey: 'id', attributes: ['id'], recordCount: 3n, tableSize: 10n, lastUpdated: undefined }),
      listDatabases: () => [['d', ['t']]],
      get: (_db, _t, ids) => ids.map((id) => JSON.stringify({ id: JSON.parse(id) })),
    },
    jobs: { progress: (d, t) => assert.deepEqual([typeof d, typeof t], ['bigint', 'bigint']), get: () => undefined, searchByStart: () => [] },
  });
  const it = storage.search('d', 't');
  assert.deepEqual(it.next().value, { id: 0 });
  assert.deepEqual(batches, [256], 'one batch fetched for the first record');
  assert.equal([...it].length, 599);
  assert.deepEqual(storage.insert('d', 't', [{ id: 7 }]), { written: [7], skipped: ['k'] });
  assert.deepEqual(storage.describeTable('d', 't').recordCount, 3);
  assert.deepEqual(storage.listDatabases(), { d: ['t'] });
  assert.deepEqual(storage.get('d', 't', ['a', 2]), [{ id: 'a' }, { id: 2 }]);
  jobs.progress(1, 2);
  assert.equal(jobs.get('x'), undefined);
});

test('an interface the operation does not import says how to add it', () => {
  bind({ storage: undefined });
  assert.throws(() => storage.listDatabases(), { kind: 'internal', message: /does not import 'storage'.*package\.json/ });
});
