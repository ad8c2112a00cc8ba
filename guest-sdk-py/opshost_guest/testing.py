"""Fakes of the host interfaces for unit tests in plain CPython: `FakeStorage` holds tables in
memory and answers searches the way the host's storage does (conditions, attributes, sort,
offset, limit, cursor batches), with the same shapes the componentize-py bindings use, so an
operation's own tests run its real code path without a server:

    from opshost_guest import bind
    from opshost_guest.testing import FakeLog, FakeStorage

    bind(storage=FakeStorage({("dev", "dog"): [{"id": 1, "weight": 3}]}), log=FakeLog())
"""

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Optional, Tuple


class Err(Exception):
    """What componentize-py raises for a host call that answered `err(op-error)`."""

    def __init__(self, value: Any):
        super().__init__(value)
        self.value = value


@dataclass
class OpError_BadRequest:  # noqa: N801 - the bindings' class names
    value: str


@dataclass
class OpError_NotFound:  # noqa: N801
    value: str


class Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class FakeLog:
    """The `log` interface: keeps `(level, message)` lines in `lines`."""

    Level = Level

    def __init__(self) -> None:
        self.lines: List[Tuple[str, str]] = []

    def write(self, level: Level, message: str) -> None:
        self.lines.append((level.name.lower(), message))


class WriteMode(Enum):
    INSERT = 0
    UPDATE = 1
    UPSERT = 2


class Comparator(Enum):
    EQUALS = 0
    NOT_EQUAL = 1
    CONTAINS = 2
    STARTS_WITH = 3
    ENDS_WITH = 4
    GREATER_THAN = 5
    GREATER_THAN_EQUAL = 6
    LESS_THAN = 7
    LESS_THAN_EQUAL = 8
    BETWEEN = 9
    EXISTS = 10
    IS_NULL = 11


class Logic(Enum):
    AND = 0
    OR = 1
    NOT = 2


@dataclass
class Condition:
    attribute: str
    comparator: Comparator
    value: str
    upper: Optional[str]


@dataclass
class Group:
    logic: Logic
    children: List[int]


@dataclass
class Node_Leaf:  # noqa: N801
    value: Condition


@dataclass
class Node_Group:  # noqa: N801
    value: Group


@dataclass
class SortKey:
    attribute: str
    descending: bool


@dataclass
class Query:
    nodes: List[Any]
    attributes: List[str]
    sort: List[SortKey]
    offset: int
    limit: Optional[int]


@dataclass
class WriteResult:
    written: List[str]
    skipped: List[str]


class Cursor:
    """Hands out the matches in batches; `closed` once released (`with`)."""

    def __init__(self, records: List[Dict[str, Any]]):
        self.records = records
        self.closed = False
        self.batches = 0

    def next_batch(self, max: int) -> List[str]:  # noqa: A002 - the WIT parameter's name
        if self.closed:
            raise RuntimeError("cursor used after release")
        self.batches += 1
        out, self.records = self.records[:max], self.records[max:]
        return [json.dumps(r, separators=(",", ":")) for r in out]

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.closed = True


class FakeStorage:
    """The `storage` interface over in-memory tables `{(database, table): [records]}` whose
    primary key is `id`. `cursors` keeps every cursor handed out (tests check they were freed)."""

    WriteMode, Comparator, Logic = WriteMode, Comparator, Logic
    Condition, Group, Node_Leaf, Node_Group, SortKey, Query = Condition, Group, Node_Leaf, Node_Group, SortKey, Query

    def __init__(self, tables: Dict[Tuple[str, str], List[Dict[str, Any]]]):
        self.tables = {k: [dict(r) for r in v] for k, v in tables.items()}
        self.cursors: List[Cursor] = []
        self.queries: List[Query] = []

    def _table(self, database: str, table: str) -> List[Dict[str, Any]]:
        if (database, table) not in self.tables:
            raise Err(OpError_NotFound(f"Table '{database}.{table}' does not exist"))
        return self.tables[(database, table)]

    def search(self, database: str, table: str, query: Query) -> Cursor:
        self.queries.append(query)
        rows = [r for r in self._table(database, table) if not query.nodes or _matches(query.nodes, 0, r)]
        for key in reversed(query.sort):
            rows.sort(key=lambda r: _order(r.get(key.attribute)), reverse=key.descending)
        rows = rows[query.offset:]
        if query.limit is not None:
            rows = rows[:query.limit]
        if query.attributes != ["*"]:
            rows = [{a: r[a] for a in query.attributes if a in r} for r in rows]
        cursor = Cursor(rows)
        self.cursors.append(cursor)
        return cursor

    def get(self, database: str, table: str, ids: List[str], attributes: List[str]) -> List[str]:
        by_id = {json.dumps(r.get("id")): r for r in self._table(database, table)}
        return [json.dumps(by_id[i]) for i in ids if i in by_id]

    def write(self, database: str, table: str, mode: WriteMode, records: List[str]) -> WriteResult:
        rows = self._table(database, table)
        written, skipped = [], []
        for text in records:
            record = json.loads(text)
            key = json.dumps(record.get("id"))
            existing = next((r for r in rows if json.dumps(r.get("id")) == key), None)
            if (existing is None and mode == WriteMode.UPDATE) or (existing is not None and mode == WriteMode.INSERT):
                skipped.append(key)
                continue
            if existing is None:
                rows.append(record)
            else:
                existing.update(record)
            written.append(key)
        return WriteResult(written, skipped)

    def delete(self, database: str, table: str, ids: List[str]) -> WriteResult:
        rows = self._table(database, table)
        keys = {json.dumps(r.get("id")) for r in rows}
        self.tables[(database, table)] = [r for r in rows if json.dumps(r.get("id")) not in ids]
        return WriteResult([i for i in ids if i in keys], [i for i in ids if i not in keys])


def _order(v: Any) -> Tuple[int, Any]:
    """Sort order across JSON types: null, booleans, numbers, strings, then the rest as text."""
    if v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1, v)
    if isinstance(v, (int, float)):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    return (4, json.dumps(v))


def _matches(nodes: List[Any], index: int, record: Dict[str, Any]) -> bool:
    node = nodes[index]
    if isinstance(node, Node_Group):
        results = [_matches(nodes, c, record) for c in node.value.children]
        if node.value.logic == Logic.AND:
            return all(results)
        if node.value.logic == Logic.OR:
            return any(results)
        return not results[0]
    c = node.value
    v = record.get(c.attribute)
    want = json.loads(c.value)
    same_kind = type(v) is type(want) or (isinstance(v, (int, float)) and isinstance(want, (int, float)) and not isinstance(v, bool))
    cmp = c.comparator
    if cmp == Comparator.EXISTS:
        return v is not None
    if cmp == Comparator.IS_NULL:
        return v is None
    if cmp == Comparator.EQUALS:
        return same_kind and v == want
    if cmp == Comparator.NOT_EQUAL:
        return not (same_kind and v == want)
    if cmp in (Comparator.CONTAINS, Comparator.STARTS_WITH, Comparator.ENDS_WITH):
        if not (isinstance(v, str) and isinstance(want, str)):
            return False
        return {Comparator.CONTAINS: want in v, Comparator.STARTS_WITH: v.startswith(want), Comparator.ENDS_WITH: v.endswith(want)}[cmp]
    if not same_kind or v is None:
        return False
    if cmp == Comparator.BETWEEN:
        return want <= v <= json.loads(c.upper or "null")
    return {
        Comparator.GREATER_THAN: v > want,
        Comparator.GREATER_THAN_EQUAL: v >= want,
        Comparator.LESS_THAN: v < want,
        Comparator.LESS_THAN_EQUAL: v <= want,
    }[cmp]
