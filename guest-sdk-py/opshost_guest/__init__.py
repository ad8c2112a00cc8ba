"""opshost guest SDK for Python: write an Operations API operation as one decorated function;
`cargo xtask build-guests` turns it into a WebAssembly component (componentize-py).

What the Rust and JavaScript SDKs give, in Python: request decoding with HarperDB's texts
(`'name' is required`, `'name' must be a string`), the `describe` info, errors mapped onto the
WIT `op-error`, and helpers over the host interfaces (storage searches and cursors, jobs, log).
The host interfaces are not imported here: the build's generated entry module imports exactly
the ones the operation's pyproject.toml lists and hands them to `bind`, so this package also
imports in plain CPython, where unit tests `bind` fakes.

    from opshost_guest import operation, bad_request

    @operation(name="my_op", version="0.1.0", super_user_only=False,
               request={"name": "string", "count": "integer?"})
    def handle(ctx, req):
        return {"message": f"hello {req['name']}, from {ctx.username}"}
"""

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

__all__ = [
    "OpError", "bad_request", "forbidden", "not_found", "conflict", "internal", "to_op_error",
    "optional", "array_of", "decode", "Context", "Operation", "operation", "registered",
    "bind", "log", "storage", "jobs", "flatten", "wit_world",
]

# ---------------------------------------------------------------------------------------------
# Errors

#: The WIT `op-error` cases, as the host maps them to HTTP statuses.
KINDS = ("bad-request", "unauthorized", "forbidden", "not-found", "conflict", "internal", "other")


class OpError(Exception):
    """An error the operation answers with; `kind` is the WIT `op-error` case (HTTP status)."""

    def __init__(self, kind: str, message: str):
        if kind not in KINDS:
            raise ValueError(f"unknown op-error kind '{kind}' (one of {', '.join(KINDS)})")
        super().__init__(message)
        self.kind = kind
        self.message = message


def bad_request(message: str) -> OpError:
    """400: the request is wrong; name the field, in HarperDB's words."""
    return OpError("bad-request", message)


def forbidden(message: str) -> OpError:
    """403: the caller may not do this."""
    return OpError("forbidden", message)


def not_found(message: str) -> OpError:
    """404: a named thing does not exist."""
    return OpError("not-found", message)


def conflict(message: str) -> OpError:
    """409: the request conflicts with what is stored."""
    return OpError("conflict", message)


def internal(message: str) -> OpError:
    """500: something failed on the server side."""
    return OpError("internal", message)


def _kind_of_class(name: str) -> Optional[str]:
    """`OpError_NotFound` (componentize-py's class for a WIT variant case) -> `not-found`."""
    if not name.startswith("OpError_"):
        return None
    camel = name[len("OpError_"):]
    kind = "".join("-" + c.lower() if c.isupper() else c for c in camel).lstrip("-")
    return kind if kind in KINDS else None


def to_op_error(e: BaseException) -> "tuple[str, str]":
    """Any raised exception as an `op-error` case and text. A host call that failed raises
    componentize-py's `Err` holding the WIT variant: it is passed on unchanged, so a missing
    table stays a 404. Anything else is a bug in the operation: `internal`, with its message."""
    if isinstance(e, OpError):
        return e.kind, str(e.message)
    payload = getattr(e, "value", None)
    kind = _kind_of_class(type(payload).__name__) if payload is not None else None
    if kind is not None and isinstance(getattr(payload, "value", None), str):
        return kind, payload.value
    if isinstance(e, MemoryError):
        # The host refused to grow memory past callMemoryMB.
        return "internal", "out of memory"
    text = str(e)
    return "internal", f"{type(e).__name__}: {text}" if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# Request decoding


@dataclass(frozen=True)
class _Optional:
    type: Any


@dataclass(frozen=True)
class _ArrayOf:
    type: Any


def optional(type_: Any) -> _Optional:
    """A field that may be missing or null (it is then None)."""
    return _Optional(type_)


def array_of(type_: Any) -> _ArrayOf:
    """An array whose items are all of `type_`."""
    return _ArrayOf(type_)


#: Which article HarperDB's texts use for each type.
_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
}

_MISSING = object()


def _no_constants(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON (and every other SDK) refuses.
    raise ValueError(f"invalid JSON constant {name}")


def decode(body: Any, schema: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Decodes a JSON request body against `schema` (field -> type), with the texts the Rust and
    JavaScript SDKs and HarperDB give: `'name' is required`, `'name' must be a string`,
    `'attributes.1' must be a string`. Types: "string", "number", "integer", "boolean",
    "object", "array", "any", a nested schema dict, `array_of(type)`, `optional(type)`; a
    trailing `?` ("number?") also makes a field optional. Unknown keys are kept (the `operation`
    key among them); null is missing."""
    if isinstance(body, (str, bytes)):
        try:
            value = json.loads(body, parse_constant=_no_constants)
        except ValueError:
            raise bad_request("Request body must be a JSON object") from None
    else:
        value = body
    if not isinstance(value, dict):
        raise bad_request("Request body must be a JSON object")
    return _decode_fields(value, schema or {}, "")


def _decode_fields(value: Dict[str, Any], schema: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    out = dict(value)
    for field, spec in schema.items():
        path = f"{prefix}.{field}" if prefix else field
        is_optional, type_ = _unwrap(spec)
        v = value.get(field, _MISSING)
        if v is _MISSING or v is None:
            if not is_optional:
                # A required field sent as null is mistyped (serde's wording), not missing.
                raise bad_request(f"'{path}' must be {_type_name(type_)}" if v is None else f"'{path}' is required")
            out[field] = None
            continue
        out[field] = _check(v, type_, path)
    return out


def _unwrap(spec: Any) -> "tuple[bool, Any]":
    if isinstance(spec, str) and spec.endswith("?"):
        return True, spec[:-1]
    if isinstance(spec, _Optional):
        return True, spec.type
    return False, spec


def _type_name(type_: Any) -> str:
    if isinstance(type_, str):
        return _NAMES.get(type_, "valid")
    if isinstance(type_, _ArrayOf):
        return "an array"
    return "an object"


def _check(v: Any, type_: Any, path: str) -> Any:
    def fail() -> OpError:
        return bad_request(f"'{path}' must be {_type_name(type_)}")

    if isinstance(type_, str):
        # bool is an int in Python: never a number here, as in JSON.
        if type_ == "any":
            return v
        if type_ == "string":
            ok = isinstance(v, str)
        elif type_ == "number":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif type_ == "integer":
            ok = (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
            if ok and isinstance(v, float):
                v = int(v)
        elif type_ == "boolean":
            ok = isinstance(v, bool)
        elif type_ == "object":
            ok = isinstance(v, dict)
        elif type_ == "array":
            ok = isinstance(v, list)
        else:
            raise ValueError(f"unknown type '{type_}' in the request schema of '{path}'")
        if not ok:
            raise fail()
        return v
    if isinstance(type_, _ArrayOf):
        if not isinstance(v, list):
            raise fail()
        is_optional, inner = _unwrap(type_.type)
        return [None if item is None and is_optional else _check(item, inner, f"{path}.{i}") for i, item in enumerate(v)]
    if isinstance(type_, dict):
        if not isinstance(v, dict):
            raise fail()
        return _decode_fields(v, type_, path)
    raise ValueError(f"invalid type in the request schema of '{path}'")


# ---------------------------------------------------------------------------------------------
# The operation


@dataclass(frozen=True)
class Context:
    """Who is calling, as the host authenticated them."""

    username: str
    role: str
    super_user: bool
    request_id: str
    #: For a job operation: None while the host asks it to check the request, the job's id
    #: when it runs as that job. Always None for other operations.
    job_id: Optional[str] = None


class Operation:
    """One operation: its `describe` info and its handler. Made by `@operation(...)`."""

    def __init__(self, handler: Callable[[Context, Dict[str, Any]], Any], name: str, version: str,
                 super_user_only: bool, job: bool, aliases: List[str], request: Dict[str, Any],
                 validate: Optional[Callable[[Context, Dict[str, Any]], Optional[str]]]):
        if not isinstance(name, str) or not name:
            raise ValueError("@operation needs a name (string)")
        self.handler = handler
        self.info = {"name": name, "aliases": list(aliases), "version": version,
                     "super_user_only": bool(super_user_only), "job": bool(job)}
        self.request = request
        self.validate = validate

    def __call__(self, ctx: Context, req: Dict[str, Any]) -> Any:
        """The handler itself (for unit tests)."""
        return self.handler(ctx, req)

    def describe(self) -> Dict[str, Any]:
        """Called once at load, in a sandbox where every import traps: constants only."""
        return dict(self.info, aliases=list(self.info["aliases"]))

    def handle(self, ctx: Context, request: str) -> str:
        """Decodes `request`, runs the handler, answers JSON text; raises OpError (or what a
        host call raised) on failure. A job operation is first called without `job_id` to check
        the request (`validate`, changing nothing; it may return a text that replaces
        "Starting job with id ..."), then as the job."""
        req = decode(request, self.request)
        if self.info["job"] and ctx.job_id is None:
            message = self.validate(ctx, req) if self.validate else None
            return json.dumps({"message": message}, separators=(",", ":"))
        return json.dumps(self.handler(ctx, req), allow_nan=False, separators=(",", ":"))


_registered: Optional[Operation] = None


def operation(name: str, version: str = "0.1.0", super_user_only: bool = True, job: bool = False,
              aliases: Optional[List[str]] = None, request: Optional[Dict[str, Any]] = None,
              validate: Optional[Callable[[Context, Dict[str, Any]], Optional[str]]] = None
              ) -> Callable[[Callable[[Context, Dict[str, Any]], Any]], Operation]:
    """Declares the component's operation (one per component): the decorated function gets a
    `Context` and the decoded request (a dict) and returns the response (any JSON value) or
    raises: an `OpError` (bad_request(...), ...) becomes that status, a failed host call keeps
    its own, anything else is a 500."""

    def wrap(handler: Callable[[Context, Dict[str, Any]], Any]) -> Operation:
        global _registered
        op = Operation(handler, name, version, super_user_only, job, aliases or [], request or {}, validate)
        _registered = op
        return op

    return wrap


def registered() -> Operation:
    """The operation declared with `@operation` (the build's entry module serves it)."""
    if _registered is None:
        raise RuntimeError("no @operation(...) was declared in the operation's module")
    return _registered


def wit_world(types: Any, err: Any) -> type:
    """The class componentize-py exports (`WitWorld`): the registered operation behind the WIT
    `describe` and `handle`, with errors as `Err(op-error)`. Called by the generated entry
    module with the bindings' `types` module and `componentize_py_types.Err`."""
    op = registered()
    cases = {kind: getattr(types, "OpError_" + "".join(p.capitalize() for p in kind.split("-"))) for kind in KINDS}

    class WitWorld:
        def describe(self) -> Any:
            i = op.describe()
            return types.OperationInfo(name=i["name"], aliases=i["aliases"], version=i["version"],
                                       super_user_only=i["super_user_only"], job=i["job"])

        def handle(self, context: Any, request: str) -> str:
            ctx = Context(username=context.username, role=context.role, super_user=context.super_user,
                          request_id=context.request_id, job_id=context.job_id)
            try:
                return op.handle(ctx, request)
            except BaseException as e:  # noqa: BLE001 - every failure is an answer, never a trap
                kind, text = to_op_error(e)
                raise err(cases[kind](text)) from None

    return WitWorld


# ---------------------------------------------------------------------------------------------
# Host interfaces

_bound: Dict[str, Any] = {}


def bind(**interfaces: Any) -> None:
    """Hands the host interfaces (binding modules) to the helpers below. The build's generated
    entry calls it with the modules the operation imports; unit tests call it with fakes."""
    _bound.update(interfaces)


def _host(name: str) -> Any:
    module = _bound.get(name)
    if module is None:
        raise internal(f"this operation does not import '{name}': add it to [tool.opshost] imports in its pyproject.toml (and grant it)")
    return module


class _Log:
    """Lines in the host log, tagged with the operation and the request id. Never raises."""

    def _write(self, level: str, message: Any) -> None:
        module = _bound.get("log")
        if module is not None:
            module.write(getattr(module.Level, level.upper()), str(message))

    def trace(self, message: Any) -> None:
        self._write("trace", message)

    def debug(self, message: Any) -> None:
        self._write("debug", message)

    def info(self, message: Any) -> None:
        self._write("info", message)

    def warn(self, message: Any) -> None:
        self._write("warn", message)

    def error(self, message: Any) -> None:
        self._write("error", message)


log = _Log()

#: How many records a cursor step fetches.
BATCH = 256

#: The WIT `comparator` cases; anything else is a bad request, not a failure in the bindings.
COMPARATORS = ("equals", "not-equal", "contains", "starts-with", "ends-with", "greater-than", "greater-than-equal",
               "less-than", "less-than-equal", "between", "exists", "is-null")


def _enum(enum_type: Any, case: str) -> Any:
    return getattr(enum_type, case.upper().replace("-", "_"))


def flatten(where: Optional[Dict[str, Any]], s: Any = None) -> List[Any]:
    """A search's condition tree in a friendly shape, flattened into the WIT `query.nodes`
    list: a leaf `{"attribute", "comparator", "value", "upper"}` (comparator as in the WIT:
    "equals", "greater-than", "between", ...) or a group `{"and": [...]}`, `{"or": [...]}`,
    `{"not": condition}`. `s` is the storage bindings module (default: the bound one)."""
    s = s if s is not None else _host("storage")
    nodes: List[Any] = []

    def add(c: Any) -> int:
        if not isinstance(c, dict):
            raise bad_request("a condition must be an object")
        index = len(nodes)
        nodes.append(None)
        if "and" in c or "or" in c:
            logic = "and" if "and" in c else "or"
            children = c[logic]
            if not isinstance(children, list):
                raise bad_request(f"'{logic}' must be an array")
            nodes[index] = s.Node_Group(s.Group(logic=_enum(s.Logic, logic), children=[add(x) for x in children]))
        elif "not" in c:
            nodes[index] = s.Node_Group(s.Group(logic=_enum(s.Logic, "not"), children=[add(c["not"])]))
        else:
            attribute = c.get("attribute")
            if not isinstance(attribute, str):
                raise bad_request("a condition needs an 'attribute'")
            comparator = c.get("comparator") or "equals"
            if comparator not in COMPARATORS:
                raise bad_request(f"'{attribute}': unknown comparator '{comparator}' (one of {', '.join(COMPARATORS)})")
            upper = c.get("upper", _MISSING)
            nodes[index] = s.Node_Leaf(s.Condition(attribute=attribute, comparator=_enum(s.Comparator, comparator),
                                                   value=json.dumps(c.get("value")),
                                                   upper=None if upper is _MISSING else json.dumps(upper)))
        return index

    if where:
        add(where)
    return nodes


class _Storage:
    """Records and tables through the host's `storage` interface."""

    def search(self, database: str, table: str, where: Optional[Dict[str, Any]] = None,
               attributes: Optional[List[str]] = None, sort: Optional[List[Dict[str, Any]]] = None,
               offset: int = 0, limit: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        """The records matching `where` (all without it), as a lazy iterator over cursor
        batches: a table never has to fit in memory. `sort`: [{"attribute", "descending"}]."""
        s = _host("storage")
        query = s.Query(nodes=flatten(where, s), attributes=list(attributes or ["*"]),
                        sort=[s.SortKey(attribute=k["attribute"], descending=bool(k.get("descending"))) for k in sort or []],
                        offset=offset, limit=limit)
        cursor = s.search(database, table, query)

        def records() -> Iterator[Dict[str, Any]]:
            # `with` frees the host's cursor as soon as the records are read (or abandoned).
            with cursor:
                while True:
                    batch = cursor.next_batch(BATCH)
                    if not batch:
                        return
                    for text in batch:
                        yield json.loads(text)

        return records()

    def all(self, database: str, table: str, **options: Any) -> List[Dict[str, Any]]:
        """The matching records as a list (for small results)."""
        return list(self.search(database, table, **options))

    def get(self, database: str, table: str, ids: List[Any], attributes: Optional[List[str]] = None) -> List[Dict[str, Any]]:
        """Records by primary key, in the order asked, missing ones left out."""
        texts = _host("storage").get(database, table, [json.dumps(i) for i in ids], list(attributes or ["*"]))
        return [json.loads(t) for t in texts]

    def write(self, database: str, table: str, mode: str, records: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
        """Writes records ("insert" | "update" | "upsert"); answers the written and skipped keys."""
        s = _host("storage")
        r = s.write(database, table, _enum(s.WriteMode, mode), [json.dumps(x) for x in records])
        return {"written": [json.loads(k) for k in r.written], "skipped": [json.loads(k) for k in r.skipped]}

    def insert(self, database: str, table: str, records: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
        return self.write(database, table, "insert", records)

    def update(self, database: str, table: str, records: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
        return self.write(database, table, "update", records)

    def upsert(self, database: str, table: str, records: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
        return self.write(database, table, "upsert", records)

    def delete(self, database: str, table: str, ids: List[Any]) -> Dict[str, List[Any]]:
        """Deletes by primary key; missing keys are reported as skipped."""
        r = _host("storage").delete(database, table, [json.dumps(i) for i in ids])
        return {"written": [json.loads(k) for k in r.written], "skipped": [json.loads(k) for k in r.skipped]}

    def describe_table(self, database: str, table: str) -> Dict[str, Any]:
        """`describe_table`'s view of a table."""
        t = _host("storage").describe_table(database, table)
        return {"database": t.database, "table": t.table, "primary_key": t.primary_key, "attributes": list(t.attributes),
                "record_count": t.record_count, "table_size": t.table_size, "last_updated": t.last_updated}

    def list_databases(self) -> Dict[str, List[str]]:
        """{database: [table, ...]} for every user database."""
        return {db: list(tables) for db, tables in _host("storage").list_databases()}

    def create_database(self, database: str) -> None:
        _host("storage").create_database(database)

    def drop_database(self, database: str) -> None:
        _host("storage").drop_database(database)

    def create_table(self, database: str, table: str, primary_key: str) -> None:
        _host("storage").create_table(database, table, primary_key)

    def drop_table(self, database: str, table: str) -> None:
        _host("storage").drop_table(database, table)


storage = _Storage()


class _Jobs:
    """Background jobs through the host's `jobs` interface."""

    def progress(self, done: int, total: int) -> None:
        """Reports the progress of the job this call runs as (ignored outside a job)."""
        _host("jobs").progress(done, total)

    def get(self, id: str) -> Optional[Dict[str, Any]]:
        """The job with this id, or None; times in epoch milliseconds."""
        job = _host("jobs").get(id)
        return None if job is None else _plain_job(job)

    def search_by_start(self, start: int, end: int) -> List[Dict[str, Any]]:
        """Jobs that started within start..=end (epoch ms), oldest first."""
        return [_plain_job(j) for j in _host("jobs").search_by_start(start, end)]


def _plain_job(j: Any) -> Dict[str, Any]:
    status = getattr(j.status, "name", str(j.status)).lower().replace("_", "-")
    return {"id": j.id, "job_type": j.job_type, "status": status, "message": j.message,
            "result": None if j.result is None else json.loads(j.result), "created": j.created, "start": j.start,
            "end": j.end, "user": j.user, "done": j.done, "total": j.total}


jobs = _Jobs()
