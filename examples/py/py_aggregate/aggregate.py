"""The aggregate itself, plain Python with no host in sight (unit-tested by CPython)."""

import math
from typing import Any, Dict, Iterable, Optional


def _empty() -> Dict[str, Any]:
    return {"count": 0, "sum": 0, "min": None, "max": None}


def _add(acc: Dict[str, Any], n: Any) -> None:
    acc["count"] += 1
    acc["sum"] += n
    acc["min"] = n if acc["min"] is None or n < acc["min"] else acc["min"]
    acc["max"] = n if acc["max"] is None or n > acc["max"] else acc["max"]


def _finish(acc: Dict[str, Any]) -> Dict[str, Any]:
    return dict(acc, avg=None if acc["count"] == 0 else acc["sum"] / acc["count"])


def _is_number(v: Any) -> bool:
    # bool is an int in Python; JSON's true is not a number.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def aggregate(records: Iterable[Dict[str, Any]], attribute: str, group_by: Optional[str] = None) -> Dict[str, Any]:
    """count, sum, min, max and avg of `attribute` over `records` (any iterable, consumed once,
    so a cursor's records never have to be held together). Records whose value is not a number
    are counted in `skipped`. With `group_by`, the same per distinct value of that attribute
    too (keys as JSON would print them: "null", "true", "3")."""
    total = _empty()
    groups: Dict[str, Dict[str, Any]] = {}
    skipped = 0
    for record in records:
        value = record.get(attribute)
        if not _is_number(value):
            skipped += 1
            continue
        _add(total, value)
        if group_by is not None:
            key = _key(record.get(group_by))
            _add(groups.setdefault(key, _empty()), value)
    out = dict(_finish(total), skipped=skipped)
    if group_by is not None:
        out["groups"] = {k: _finish(groups[k]) for k in sorted(groups)}
    return out


def _key(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
