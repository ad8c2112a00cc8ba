"""Test guest `py_probe` version 1 (Python): answers its version, or misbehaves on request
(`spin`: an endless loop, `hog`: allocates without end), for the polyglot e2e tests and
`cargo xtask bench polyglot`. Imports only `log`."""

from opshost_guest import operation


@operation(name="py_probe", version="0.1.0", super_user_only=False, request={"spin": "boolean?", "hog": "boolean?"})
def handle(ctx, req):
    if req["spin"]:
        while True:
            pass
    if req["hog"]:
        kept = []
        while True:
            kept.append(bytearray(1 << 20))
    return {"version": 1, "user": ctx.username}
