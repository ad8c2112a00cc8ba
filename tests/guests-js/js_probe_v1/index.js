//! Test guest `js_probe` version 1 (JavaScript): answers its version, or misbehaves on request
//! (`spin`: an endless loop, `hog`: allocates without end), for the polyglot e2e tests and
//! `cargo xtask bench polyglot`. Imports only `log`.

import { operation } from '../../../guest-sdk-js/index.js';

export const { describe, handle } = operation({
  name: 'js_probe',
  version: '0.1.0',
  superUserOnly: false,
  request: { spin: 'boolean?', hog: 'boolean?' },
  handle(ctx, req) {
    if (req.spin) {
      for (;;) {}
    }
    if (req.hog) {
      const kept = [];
      for (;;) kept.push(new Array(1 << 20).fill(kept.length));
    }
    return { version: 1, user: ctx.username };
  },
});
