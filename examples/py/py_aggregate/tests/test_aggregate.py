"""Unit tests of `py_aggregate` in plain CPython: the aggregate itself, and the operation
against the SDK's fake storage (`python3 -m unittest` from this folder, with guest-sdk-py on
PYTHONPATH; the e2e suite runs them)."""

import json
import unittest

import opshost_guest
from opshost_guest import Context, OpError
from opshost_guest.testing import Err, FakeLog, FakeStorage

import operation
from aggregate import aggregate

CTX = Context(username="admin", role="super_user", super_user=True, request_id="t1")


class AggregateTest(unittest.TestCase):
    def test_counts_sums_and_extremes_skipping_non_numbers(self):
        records = [{"w": 3}, {"w": 1.5}, {"w": "heavy"}, {"w": True}, {}, {"w": 10}]
        self.assertEqual(aggregate(iter(records), "w"), {"count": 3, "sum": 14.5, "min": 1.5, "max": 10, "avg": 14.5 / 3, "skipped": 3})

    def test_nothing_to_aggregate(self):
        self.assertEqual(aggregate([], "w"), {"count": 0, "sum": 0, "min": None, "max": None, "avg": None, "skipped": 0})

    def test_groups_are_sorted_with_json_keys(self):
        records = [{"w": 1, "b": "pug"}, {"w": 3, "b": "lab"}, {"w": 5, "b": "lab"}, {"w": 7}, {"w": 9, "b": True}]
        out = aggregate(records, "w", "b")
        self.assertEqual(list(out["groups"]), ["lab", "null", "pug", "true"])
        self.assertEqual(out["groups"]["lab"], {"count": 2, "sum": 8, "min": 3, "max": 5, "avg": 4.0})


class OperationTest(unittest.TestCase):
    def setUp(self):
        dogs = [{"id": i, "breed": "lab" if i % 2 == 0 else "pug", "weight": i % 50, "age": i % 10} for i in range(1000)]
        self.storage = FakeStorage({("dev", "dog"): dogs + [{"id": 5000, "breed": "lab", "weight": "heavy"}]})
        self.log = FakeLog()
        opshost_guest.bind(storage=self.storage, log=self.log)

    def call(self, **request):
        return json.loads(operation.handle.handle(CTX, json.dumps(dict(operation="py_aggregate", **request))))

    def test_reads_the_table_through_a_cursor_and_frees_it(self):
        out = self.call(database="dev", table="dog", attribute="weight")
        total = sum(i % 50 for i in range(1000))
        self.assertEqual((out["count"], out["sum"], out["min"], out["max"], out["skipped"]), (1000, total, 0, 49, 1))
        self.assertEqual(self.storage.queries[0].attributes, ["weight"])
        self.assertTrue(all(c.closed for c in self.storage.cursors))
        self.assertGreater(self.storage.cursors[0].batches, 3, "read in batches, not at once")
        self.assertEqual(self.log.lines, [("debug", "py_aggregate over dev.dog for admin: 1000 values")])

    def test_groups_with_conditions_passed_to_the_search(self):
        out = self.call(database="dev", table="dog", attribute="weight", group_by="breed",
                        conditions={"attribute": "age", "comparator": "less-than", "value": 5})
        self.assertEqual((out["count"], out["groups"]["lab"]["count"], out["groups"]["pug"]["count"]), (500, 300, 200))

    def test_bad_requests_name_the_field(self):
        for request, text in [
            ({"table": "dog", "attribute": "weight"}, "'database' is required"),
            ({"database": 7, "table": "dog", "attribute": "weight"}, "'database' must be a string"),
            ({"database": "dev", "table": "dog", "attribute": "weight", "group_by": 1}, "'group_by' must be a string"),
            ({"database": "dev", "table": "dog", "attribute": "weight", "conditions": "age"}, "'conditions' must be an object"),
        ]:
            with self.assertRaises(OpError) as caught:
                self.call(**request)
            self.assertEqual((caught.exception.kind, caught.exception.message), ("bad-request", text), request)

    def test_a_host_error_passes_through(self):
        with self.assertRaises(Err) as caught:
            self.call(database="dev", table="cat", attribute="weight")
        self.assertEqual(opshost_guest.to_op_error(caught.exception), ("not-found", "Table 'dev.cat' does not exist"))


if __name__ == "__main__":
    unittest.main()
