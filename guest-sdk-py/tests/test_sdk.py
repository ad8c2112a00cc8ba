"""Unit tests of the Python SDK in plain CPython (`python3 -m unittest` from guest-sdk-py/):
decoding texts (the cases shared with the JavaScript SDK), error mapping, describe/handle
through the generated WitWorld, job validation, the condition tree and the storage and jobs
helpers over fakes."""

import json
import pathlib
import unittest
from dataclasses import dataclass
from types import SimpleNamespace

import opshost_guest as sdk
from opshost_guest import Context, OpError, array_of, decode
from opshost_guest.testing import Err, FakeLog, FakeStorage, OpError_NotFound

CTX = Context(username="ada", role="r", super_user=False, request_id="x-1")
SHARED = json.loads((pathlib.Path(__file__).parent / "request_texts.json").read_text())


def schema_of(spec):
    """The shared fixture's notation as the Python SDK's."""
    if isinstance(spec, dict) and set(spec) == {"arrayOf"}:
        return array_of(schema_of(spec["arrayOf"]))
    if isinstance(spec, dict):
        return {k: schema_of(v) for k, v in spec.items()}
    return spec


class DecodeTest(unittest.TestCase):
    def test_the_shared_cases_answer_harperdbs_texts(self):
        schema = schema_of(SHARED["schema"])
        for case in SHARED["cases"]:
            body = case["body"] if case.get("raw") else json.dumps(case["body"])
            if case["error"] is None:
                decode(body, schema)
                continue
            with self.assertRaises(OpError, msg=case) as caught:
                decode(body, schema)
            self.assertEqual((caught.exception.kind, caught.exception.message), ("bad-request", case["error"]))

    def test_optional_fields_are_none_and_unknown_keys_stay(self):
        r = decode('{"operation": "x", "name": "a", "flag": null, "other": 1, "n": 2.0}', {"name": "string", "flag": "boolean?", "n": "integer"})
        self.assertEqual(r, {"operation": "x", "name": "a", "flag": None, "other": 1, "n": 2})
        self.assertIsInstance(r["n"], int)

    def test_nan_is_not_json(self):
        with self.assertRaises(OpError):
            decode('{"n": NaN}', {"n": "number"})


@dataclass
class OperationInfo:
    name: str
    aliases: list
    version: str
    super_user_only: bool
    job: bool


def fake_types():
    cases = {}
    for kind in sdk.KINDS:
        cls_name = "OpError_" + "".join(p.capitalize() for p in kind.split("-"))
        cases[cls_name] = dataclass(type(cls_name, (), {"__annotations__": {"value": str}}))
    return SimpleNamespace(OperationInfo=OperationInfo, **cases)


class OperationTest(unittest.TestCase):
    def world(self, **kwargs):
        @sdk.operation(**kwargs)
        def handle(ctx, req):
            if req.get("boom"):
                raise ValueError("boom")
            if req.get("missing"):
                raise Err(OpError_NotFound("Table 'dev.cat' does not exist"))
            if req.get("forbid"):
                raise sdk.forbidden("not you")
            return {"hello": req.get("name"), "by": ctx.username}

        return handle, sdk.wit_world(fake_types(), Err)()

    def context(self, job_id=None):
        return SimpleNamespace(username="ada", role="r", super_user=False, request_id="x-1", job_id=job_id)

    def test_describe_returns_the_declared_constants(self):
        _, world = self.world(name="my_op", aliases=["my_alias"], version="1.2.3", super_user_only=False)
        self.assertEqual(world.describe(), OperationInfo("my_op", ["my_alias"], "1.2.3", False, False))
        _, world = self.world(name="other")
        self.assertEqual(world.describe(), OperationInfo("other", [], "0.1.0", True, False), "super_user only by default")

    def test_handle_answers_json_or_the_op_error_variant(self):
        _, world = self.world(name="my_op", request={"name": "string?"})
        self.assertEqual(json.loads(world.handle(self.context(), '{"name": "x"}')), {"hello": "x", "by": "ada"})
        for body, kind, text in [
            ('{"name": 3}', "OpError_BadRequest", "'name' must be a string"),
            ('{"forbid": true}', "OpError_Forbidden", "not you"),
            ('{"missing": true}', "OpError_NotFound", "Table 'dev.cat' does not exist"),
            ('{"boom": true}', "OpError_Internal", "ValueError: boom"),
        ]:
            with self.assertRaises(Err, msg=body) as caught:
                world.handle(self.context(), body)
            self.assertEqual((type(caught.exception.value).__name__, caught.exception.value.value), (kind, text))

    def test_a_memory_error_is_out_of_memory(self):
        self.assertEqual(sdk.to_op_error(MemoryError()), ("internal", "out of memory"))

    def test_a_job_checks_first_then_runs(self):
        calls = []

        @sdk.operation(name="my_job", job=True, validate=lambda ctx, req: calls.append("validate") or "Checking")
        def handle(ctx, req):
            calls.append(ctx.job_id)
            return {"done": True}

        world = sdk.wit_world(fake_types(), Err)()
        self.assertEqual(json.loads(world.handle(self.context(), "{}")), {"message": "Checking"})
        self.assertEqual(json.loads(world.handle(self.context("j-1"), "{}")), {"done": True})
        self.assertEqual(calls, ["validate", "j-1"])


class HostHelpersTest(unittest.TestCase):
    def setUp(self):
        self.storage = FakeStorage({("dev", "dog"): [{"id": i, "name": f"d{i}", "age": i % 7} for i in range(600)]})
        self.log = FakeLog()
        sdk.bind(storage=self.storage, log=self.log)

    def test_flatten_makes_the_wit_node_list(self):
        nodes = sdk.flatten({"and": [{"attribute": "age", "comparator": "between", "value": 1, "upper": 3}, {"not": {"attribute": "name", "value": "d1"}}]})
        self.assertEqual(len(nodes), 4)
        self.assertEqual((nodes[0].value.logic.name, nodes[0].value.children), ("AND", [1, 2]))
        self.assertEqual((nodes[1].value.comparator.name, nodes[1].value.value, nodes[1].value.upper), ("BETWEEN", "1", "3"))
        self.assertEqual((nodes[2].value.logic.name, nodes[2].value.children), ("NOT", [3]))
        self.assertEqual((nodes[3].value.comparator.name, nodes[3].value.upper), ("EQUALS", None))
        with self.assertRaises(OpError) as caught:
            sdk.flatten({"attribute": "age", "comparator": "no-such"})
        self.assertTrue(caught.exception.message.startswith("'age': unknown comparator 'no-such'"))
        self.assertEqual(sdk.flatten(None), [])

    def test_search_streams_batches_and_frees_the_cursor(self):
        seen = list(sdk.storage.search("dev", "dog", where={"attribute": "age", "comparator": "equals", "value": 0},
                                       attributes=["id"], sort=[{"attribute": "id", "descending": True}], limit=50))
        self.assertEqual(len(seen), 50)
        self.assertEqual(seen[0], {"id": 595})
        records = sdk.storage.search("dev", "dog")
        self.assertEqual(next(records)["id"], 0)
        records.close()
        self.assertTrue(all(c.closed for c in self.storage.cursors), "an abandoned iterator frees its cursor")

    def test_writes_and_gets(self):
        self.assertEqual(sdk.storage.insert("dev", "dog", [{"id": 1}, {"id": 1000}]), {"written": [1000], "skipped": [1]})
        self.assertEqual(sdk.storage.get("dev", "dog", [1000, 5000]), [{"id": 1000}])
        self.assertEqual(sdk.storage.delete("dev", "dog", [1000, 5000]), {"written": [1000], "skipped": [5000]})

    def test_an_unimported_interface_is_an_internal_error_naming_it(self):
        sdk._bound.pop("jobs", None)
        with self.assertRaises(OpError) as caught:
            sdk.jobs.progress(1, 2)
        self.assertEqual(caught.exception.kind, "internal")
        self.assertIn("'jobs'", caught.exception.message)

    def test_log_never_raises(self):
        sdk.log.warn("careful")
        self.assertEqual(self.log.lines, [("warn", "careful")])
        sdk._bound.pop("log")
        sdk.log.error("nowhere")


if __name__ == "__main__":
    unittest.main()
