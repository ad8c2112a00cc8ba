//! Test guest `js_clock` (JavaScript, `"wasi": true`): answers `Date.now()`, which reads
//! wasi:clocks/wall-clock at run time. The engine also reads the clock on entry to `describe`,
//! so this proves the host's load sandbox lets clock reads through.

import { operation } from '../../../guest-sdk-js/index.js';

export const { describe, handle } = operation({
  name: 'js_clock',
  version: '0.1.0',
  superUserOnly: false,
  handle() {
    return { now: Date.now() };
  },
});
