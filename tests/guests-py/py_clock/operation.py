"""Test guest `py_clock` (Python, `wasi = true`): answers the server's current time read through
WASI (`time.time()`), in milliseconds since the epoch, for the polyglot e2e test that a Python
operation granted `wasi` loads and reads the real clock (and is refused without the grant)."""

import time

from opshost_guest import operation


@operation(name="py_clock", version="0.1.0", super_user_only=False)
def handle(ctx, req):
    return {"now": int(time.time() * 1000)}
