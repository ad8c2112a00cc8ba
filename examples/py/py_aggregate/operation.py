"""`py_aggregate`: an example operation in Python. Reads a table through the host's `storage`
interface (a cursor, batch by batch) and answers an aggregate of one numeric attribute: count,
sum, min, max, avg, optionally per value of another attribute.

Request: `{"operation": "py_aggregate", "database": "dev", "table": "dog",
"attribute": "weight", "group_by": "breed"}`; `group_by` and `conditions` (a search's
conditions, e.g. `{"attribute": "age", "comparator": "greater-than", "value": 2}`) are
optional. Capabilities: `storage` (grant it: `{"py_aggregate": ["storage"]}`)."""

from opshost_guest import log, operation, storage

from aggregate import aggregate


@operation(
    name="py_aggregate",
    version="0.1.0",
    super_user_only=False,
    request={
        "database": "string",
        "table": "string",
        "attribute": "string",
        "group_by": "string?",
        "conditions": "object?",
    },
)
def handle(ctx, req):
    attributes = [req["attribute"]] if req["group_by"] is None else [req["attribute"], req["group_by"]]
    # The table's records stream from a cursor; only the accumulators stay in memory.
    records = storage.search(req["database"], req["table"], where=req["conditions"], attributes=attributes)
    result = aggregate(records, req["attribute"], req["group_by"])
    log.debug(f"py_aggregate over {req['database']}.{req['table']} for {ctx.username}: {result['count']} values")
    return dict({"database": req["database"], "table": req["table"], "attribute": req["attribute"]}, **result)
