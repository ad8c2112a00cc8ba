//! The request-decoding cases the JavaScript and Python SDKs must answer alike
//! (guest-sdk-py/tests/request_texts.json, one file for both), run by Node.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decode, toOpError } from '../index.js';

const shared = JSON.parse(readFileSync(new URL('../../guest-sdk-py/tests/request_texts.json', import.meta.url), 'utf8'));

test('the shared decoding cases answer the same texts as the Python SDK', () => {
  for (const c of shared.cases) {
    const body = c.raw ? c.body : JSON.stringify(c.body);
    if (c.error === null) {
      decode(body, shared.schema);
      continue;
    }
    assert.throws(() => decode(body, shared.schema), (e) => {
      assert.deepEqual(toOpError(e), { tag: 'bad-request', val: c.error }, JSON.stringify(c));
      return true;
    });
  }
});
