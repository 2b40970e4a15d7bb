"""Tests of the Mixpeek test server (mixpeek_server.py) and dataset.py.

Run: /usr/bin/python3 -m pytest -q tests/server
The servers run in-process on ephemeral ports; one test starts the CLI.
"""

import contextlib
import gzip
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset  # noqa: E402
import mixpeek_server  # noqa: E402
import schema  # noqa: E402

KEY = "sk_test_mixpeekfs"
COUNT, SEED = 1200, 7
DATA = dataset.generate(COUNT, SEED)


def default_order(tasks):
    by_id = sorted(tasks, key=lambda t: t["task_id"])
    return sorted(by_id, key=lambda t: t["created_at"], reverse=True)


ORDERED = default_order(DATA)
BY_ID = {t["task_id"]: t for t in DATA}


class Client:
    def __init__(self, port, tls=None):
        self.port = port
        self.tls = tls      # an ssl.SSLContext: speak HTTPS to localhost

    def req(self, method, path, body=None, headers=None, auth=True,
            timeout=10):
        hdrs = {"Accept": "application/json"}
        if auth:
            hdrs["Authorization"] = "Bearer " + KEY
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        if self.tls is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                              timeout=timeout)
        else:
            conn = http.client.HTTPSConnection("localhost", self.port,
                                               timeout=timeout,
                                               context=self.tls)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp, data
        finally:
            conn.close()

    def json(self, method, path, body=None, expect=200, **kw):
        status, resp, data = self.req(method, path, body, **kw)
        assert status == expect, data[:500]
        assert resp.getheader("Content-Type") == "application/json"
        return json.loads(data)

    def list(self, body=None, expect=200, **params):
        qs = urllib.parse.urlencode({k: v for k, v in params.items()})
        return self.json("POST", "/v1/tasks/list" + ("?" + qs if qs else ""),
                         body, expect=expect)

    def list_all(self, body=None, limit=1000):
        ids, cursor = [], None
        while True:
            params = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            page = self.list(body, **params)
            ids += [t["task_id"] for t in page["results"]]
            cursor = page["pagination"]["next_cursor"]
            if not cursor:
                return ids

    def faults(self, **cfg):
        return self.json("POST", "/_test/faults", cfg, auth=False)


def start(**kw):
    """A server in this process; with the project's extra keys unless
    told otherwise (test_published_shape_by_default)."""
    kw.setdefault("api_key", KEY)
    kw.setdefault("extra_keys", True)
    srv = mixpeek_server.serve_in_thread(**kw)
    return srv, Client(srv.server_address[1])


@pytest.fixture(scope="module")
def main_server():
    srv, client = start(count=COUNT, seed=SEED)
    yield client
    srv.stop()


@pytest.fixture
def c(main_server):
    main_server.json("POST", "/_test/reset", {"faults": True}, auth=False)
    return main_server


@pytest.fixture
def fresh():
    srv, client = start(count=200, seed=3)
    yield client
    srv.stop()


def expect_ids(pred):
    return [t["task_id"] for t in ORDERED if pred(t)]


def assert_422(client, body=None, fragment=None, **params):
    env = client.list(body, expect=422, **params)
    assert env["success"] is False and env["status"] == 422
    assert env["error"]["type"] == "ValidationError"
    assert env["error"]["details"]["validation_errors"]
    if fragment:
        assert fragment in env["error"]["message"], env["error"]["message"]
    return env


# ------------------------------------------------------------ dataset

def test_dataset_deterministic_and_shaped():
    assert dataset.generate(50, 9) == dataset.generate(50, 9)
    assert dataset.generate(50, 9) != dataset.generate(50, 10)
    keys = ["task_id", "task_type", "status", "description", "inputs",
            "outputs", "additional_data", "error", "created_at",
            "updated_at"]
    assert len(dataset.STATUSES) == 13 and len(dataset.TASK_TYPES) == 30
    ids = [t["task_id"] for t in DATA]
    assert len(set(ids)) == len(ids)
    uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                         r"[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    n_uuid = 0
    for t in DATA:
        assert list(t) == keys
        n_uuid += bool(uuid_re.fullmatch(t["task_id"]))
        assert uuid_re.fullmatch(t["task_id"]) or \
            re.fullmatch(r"task_[0-9a-f]{12}", t["task_id"])
        assert "null" in json.dumps(t)
        assert t["created_at"] <= t["updated_at"] <= "2026-11-29T00:00:00Z"
        assert t["created_at"] >= "2026-10-30T00:00:00Z"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                            t["created_at"])
        ad = t["additional_data"]
        assert ("progress" in ad) == (t["status"] in dataset.ACTIVE)
        assert 0 <= ad["object_count"] <= 5000
        if t["status"] == "FAILED":
            assert t["error"] and ad["error"] == t["error"]
            for word in ("timeout", "oom"):
                assert (word in t["description"].lower()) == \
                    (word in t["error"].lower())
        else:
            assert t["error"] is None and "error" not in ad
            assert not dataset.mentions_forbidden(t)
        if t["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS"):
            assert t["outputs"] and all("processed_count" in o and
                                        "collection_id" in o
                                        for o in t["outputs"])
        else:
            assert t["outputs"] in (None, [])
    assert 0.2 < n_uuid / len(DATA) < 0.4
    assert {t["status"] for t in DATA} == set(dataset.STATUSES)
    assert {t["task_type"] for t in DATA} == set(dataset.TASK_TYPES)
    failed = [t for t in DATA if t["status"] == "FAILED"]
    assert 0.08 < len(failed) / len(DATA) < 0.16
    timeout = sum("timeout" in t["description"].lower() for t in failed)
    oom = sum("oom" in t["description"].lower() for t in failed)
    assert 0.25 < timeout / len(failed) < 0.55
    assert 0.08 < oom / len(failed) < 0.32
    assert any("\n" in t["additional_data"].get("notes", "") for t in DATA)
    assert any(t["inputs"] and isinstance(t["inputs"][0], dict)
               for t in DATA)


def test_dataset_coverage_small_and_options():
    assert {t["task_type"] for t in dataset.generate(300, 1)} == \
        set(dataset.TASK_TYPES)
    assert {t["status"] for t in dataset.generate(1000, 2)} == \
        set(dataset.STATUSES)
    plain = dataset.generate(5, 1, timestamps=False)
    assert all("created_at" not in t and "updated_at" not in t
               for t in plain)
    weird = dataset.weird_tasks()
    ids = {t["task_id"] for t in weird}
    assert {"task/evil", ".."} <= ids
    assert any(len(i.encode()) == 300 for i in ids)
    keys = set().union(*(t["additional_data"] for t in weird))
    assert {"", ".", "..", "a/b", "a%2Fb"} <= keys
    assert any(len(k.encode()) == 300 for k in keys)


# -------------------------------------------------------- auth, errors

def test_auth(c):
    expected = {"success": False, "status": 401,
                "error": {"message": "Invalid or missing API key",
                          "type": "UnauthorizedError", "details": None}}
    assert c.json("POST", "/v1/tasks/list", auth=False,
                  expect=401) == expected
    assert c.json("GET", "/v1/tasks/" + DATA[0]["task_id"],
                  headers={"Authorization": "Bearer sk_wrong"},
                  expect=401) == expected
    assert c.json("DELETE", "/v1/tasks/x", auth=False,
                  headers={"Authorization": "Basic " + KEY},
                  expect=401) == expected
    stats = c.json("GET", "/_test/stats", auth=False)
    assert stats["auth_failures"] == 3
    assert stats["status_codes"] == {"401": 3}
    # the key header is never logged
    log = c.json("GET", "/_test/log", auth=False)
    assert len(log) == 3 and KEY not in json.dumps(log)


def test_not_found_routes(c):
    for method, path in (("GET", "/v1/nope"), ("POST", "/v1/tasks"),
                         ("GET", "/"), ("PUT", "/v1/tasks/x"),
                         ("GET", "/v1/tasks/")):
        env = c.json(method, path, expect=404)
        assert env["error"]["type"] == "NotFoundError"
        assert env["success"] is False and env["status"] == 404


def test_keep_alive_and_content_length(c):
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    hdrs = {"Authorization": "Bearer " + KEY}
    for _ in range(3):
        conn.request("POST", "/v1/tasks/list?limit=5", body=b"{}",
                     headers=hdrs)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert int(resp.getheader("Content-Length")) == len(body)
    conn.close()


# ------------------------------------------------------------- paging

def test_default_page_and_order(c):
    page = c.list()
    assert [t["task_id"] for t in page["results"]] == \
        [t["task_id"] for t in ORDERED[:100]]
    assert page["results"][0] == ORDERED[0]
    pag = page["pagination"]
    assert list(pag) == ["total", "page", "page_size", "total_pages",
                         "next_page", "previous_page", "next_cursor"]
    assert pag["next_cursor"] and pag["total"] is None
    assert pag["page"] is None and pag["next_page"] is None
    assert c.json("GET", "/_test/dataset", auth=False) == ORDERED


def test_offset_paging_include_total(c):
    p1 = c.list(limit=1000, include_total="true")
    p2 = c.list(limit=1000, offset=1000, include_total="true")
    assert [t["task_id"] for t in p1["results"] + p2["results"]] == \
        [t["task_id"] for t in ORDERED]
    assert p1["pagination"]["next_cursor"]
    assert p2["pagination"]["next_cursor"] is None
    assert p2["pagination"] == {"total": COUNT, "page": 2, "page_size": 1000,
                                "total_pages": 2, "next_page": None,
                                "previous_page": None, "next_cursor": None}
    # next_cursor is set exactly when more results follow
    assert c.list(limit=200, offset=1000)["pagination"]["next_cursor"] is None
    assert c.list(limit=199, offset=1000)["pagination"]["next_cursor"]
    end = c.list(offset=10000, limit=1000)
    assert end["results"] == [] and end["pagination"]["next_cursor"] is None


def test_cursor_paging(c):
    assert c.list_all(limit=250) == [t["task_id"] for t in ORDERED]
    body = {"status": "FAILED"}
    assert c.list_all(body, limit=7) == \
        expect_ids(lambda t: t["status"] == "FAILED")
    first = c.list(limit=100)
    cur = first["pagination"]["next_cursor"]
    assert "+" in cur and "/" in cur and cur.endswith("=")
    # offset is ignored with a cursor; include_total reports the page
    p = c.list(limit=100, cursor=cur, offset=700, include_total=1)
    assert p["results"][0] == ORDERED[100]
    assert p["pagination"]["page"] == 2
    # a cursor from another query, a broken one, an unencoded '+'
    assert_422(c, {"status": "FAILED"}, "different query", cursor=cur)
    assert_422(c, None, "cursor", cursor="not-a-cursor")
    path = "/v1/tasks/list?limit=100&cursor=" + cur
    env = c.json("POST", path, expect=422)
    assert "percent-encoded" in env["error"]["message"]
    # an empty cursor counts as absent
    assert c.list(cursor="")["results"][0] == ORDERED[0]


@pytest.mark.parametrize("params,fragment", [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
    ({"limit": "abc"}, "integer"), ({"limit": ""}, "integer"),
    ({"limit": "1.5"}, "integer"), ({"offset": -1}, "offset"),
    ({"offset": 10001}, "offset"), ({"include_total": "maybe"}, "boolean"),
])
def test_query_param_validation(c, params, fragment):
    env = assert_422(c, None, fragment, **params)
    assert env["error"]["details"]["validation_errors"][0]["location"][0] \
        == "query"


def test_limits_at_bounds(c):
    assert len(c.list(limit=1)["results"]) == 1
    assert len(c.list(limit=1000)["results"]) == 1000
    assert c.list(offset=10000)["results"] == []


@pytest.mark.parametrize("body,fragment", [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    ({"status": "failed"}, "status"),
    ({"task_type": "THUMBNAIL"}, "task_type"),
    ({"sort": {"field": "created_at", "direction": "down"}}, "direction"),
    ({"sort": {"direction": "asc"}}, "sort.field"),
    ({"search": 5}, "search"),
    ({"filters": []}, "object"),
    ({"filters": {"AND": [{"field": "status", "operator": "like",
                           "value": "x"}]}}, "unknown operator"),
    ({"filters": {"AND": [{"field": "status"}]}}, "value"),
    ({"filters": {"AND": [{"operator": "eq", "value": 1, "field": ""}]}},
     "field"),
    ({"filters": {"AND": [{"field": "status", "operator": "in",
                           "value": "FAILED"}]}}, "array"),
    ({"filters": {"OR": [{"field": "error", "operator": "exists",
                          "value": "yes"}]}}, "boolean"),
    ({"filters": {"OR": [{"field": "error", "operator": "is_null",
                          "value": 1}]}}, "boolean"),
    ({"filters": {"AND": [{"field": "x", "operator": "gt",
                           "value": [1]}]}}, "number or string"),
    ({"filters": {"AND": [{"field": "x", "operator": "starts_with",
                           "value": 1}]}}, "string"),
    ({"filters": {"AND": [{"field": "x", "operator": "contains",
                           "value": None}]}}, "contains"),
    ({"filters": {"AND": [{"field": "x", "operator": "text",
                           "value": 3}]}}, "text"),
    ({"filters": {"AND": "status"}}, "AND"),
    ({"filters": {"AND": [5]}}, "groups"),
    ({"filters": {"case_sensitive": "yes"}}, "case_sensitive"),
    ({"filters": {"AND": [{"field": "task_id", "value": {
        "type": "dynamic", "field": "inputs.x"}}]}}, "dynamic"),
])
def test_body_validation(c, body, fragment):
    env = assert_422(c, body, fragment)
    assert env["error"]["details"]["validation_errors"][0]["location"][0] \
        == "body"


def test_invalid_regex_names_error(c):
    env = assert_422(c, {"filters": {"AND": [
        {"field": "description", "operator": "regex", "value": "time[out"}]}},
        "unterminated character set")
    loc = env["error"]["details"]["validation_errors"][0]["location"]
    assert loc == ["body", "filters", "AND", 0, "value"]


def test_body_absent_empty_null_and_unknown_keys(c):
    first = [t["task_id"] for t in ORDERED[:100]]
    for body in (None, b"", b"{}", b"null", {"limit": 5, "foo": [1]}):
        got = c.list(body)
        assert [t["task_id"] for t in got["results"]] == first


# ------------------------------------------------------------ filters

def _ad(t):
    return t["additional_data"]


SOME_COL = next(t for t in DATA if len(_ad(t)["collection_ids"]) == 3
                )["additional_data"]["collection_ids"][1]
SOME_OUT_COL = next(t for t in DATA if t["outputs"])["outputs"][0][
    "collection_id"]

OPERATOR_CASES = [
    ("eq", {"field": "status", "operator": "eq", "value": "failed"},
     lambda t: t["status"] == "FAILED"),
    ("eq-default-op", {"field": "additional_data.bucket_id",
                       "value": "bkt_media"},
     lambda t: _ad(t)["bucket_id"] == "bkt_media"),
    ("eq-array", {"field": "additional_data.collection_ids",
                  "operator": "eq", "value": SOME_COL},
     lambda t: SOME_COL in _ad(t)["collection_ids"]),
    ("eq-array-of-objects", {"field": "outputs.collection_id",
                             "value": SOME_OUT_COL},
     lambda t: any(o["collection_id"] == SOME_OUT_COL
                   for o in t["outputs"] or [])),
    ("eq-null-matches-missing", {"field": "additional_data.notes",
                                 "value": None},
     lambda t: "notes" not in _ad(t)),
    ("eq-bool-is-not-number", {"field": "additional_data.total_tiers",
                               "value": True}, lambda t: False),
    ("eq-int-float", {"field": "additional_data.total_tiers",
                      "value": 2.0},
     lambda t: _ad(t)["total_tiers"] == 2),
    ("ne", {"field": "additional_data.bucket_id", "operator": "ne",
            "value": "BKT_MEDIA"},
     lambda t: _ad(t)["bucket_id"] != "bkt_media"),
    ("gt", {"field": "additional_data.object_count", "operator": "gt",
            "value": 2500}, lambda t: _ad(t)["object_count"] > 2500),
    ("gt-type-mismatch", {"field": "additional_data.object_count",
                          "operator": "gt", "value": "5"}, lambda t: False),
    ("gte", {"field": "additional_data.total_tiers", "operator": "gte",
             "value": 3}, lambda t: _ad(t)["total_tiers"] >= 3),
    ("lt", {"field": "created_at", "operator": "lt", "value": "2026-11-10"},
     lambda t: t["created_at"] < "2026-11-10"),
    ("lte", {"field": "additional_data.progress", "operator": "lte",
             "value": 0.5},
     lambda t: "progress" in _ad(t) and _ad(t)["progress"] <= 0.5),
    ("in", {"field": "status", "operator": "in",
            "value": ["PENDING", "processing"]},
     lambda t: t["status"] in ("PENDING", "PROCESSING")),
    ("nin", {"field": "task_type", "operator": "nin",
             "value": ["thumbnail", "video_segment"]},
     lambda t: t["task_type"] not in ("thumbnail", "video_segment")),
    ("contains", {"field": "description", "operator": "contains",
                  "value": "TimeOut"},
     lambda t: "timeout" in t["description"].lower()),
    ("contains-array", {"field": "additional_data.config.params.languages",
                        "operator": "contains", "value": "DE"},
     lambda t: "de" in _ad(t)["config"].get("params", {}).get(
         "languages", [])),
    ("starts_with", {"field": "task_id", "operator": "starts_with",
                     "value": "TASK_"},
     lambda t: t["task_id"].startswith("task_")),
    ("ends_with", {"field": "additional_data.bucket_id",
                   "operator": "ends_with", "value": "_docs"},
     lambda t: _ad(t)["bucket_id"].endswith("_docs")),
    ("regex", {"field": "description", "operator": "regex",
               "value": r"^worker oom|timeout after \d+s"},
     lambda t: re.search(r"^worker oom|timeout after \d+s",
                         t["description"], re.I) is not None),
    ("exists-true", {"field": "additional_data.progress",
                     "operator": "exists", "value": True},
     lambda t: "progress" in _ad(t)),
    ("exists-false", {"field": "additional_data.notes",
                      "operator": "exists", "value": False},
     lambda t: "notes" not in _ad(t)),
    ("exists-null-value", {"field": "error", "operator": "exists",
                           "value": True}, lambda t: True),
    ("is_null-false", {"field": "error", "operator": "is_null",
                       "value": False}, lambda t: t["error"] is not None),
    ("is_null-true", {"field": "additional_data.current_tier",
                      "operator": "is_null", "value": True},
     lambda t: _ad(t)["current_tier"] is None),
    ("is_null-missing", {"field": "additional_data.progress",
                         "operator": "is_null", "value": True},
     lambda t: "progress" not in _ad(t)),
    ("text", {"field": "description", "operator": "text",
              "value": "EXTRACTION   300s"},
     lambda t: "extraction" in t["description"].lower() and
     "300s" in t["description"].lower()),
    ("text-nested", {"field": "additional_data", "operator": "text",
                     "value": "résumé 東京"},
     lambda t: "東京" in _ad(t).get("notes", "")),
]


@pytest.mark.parametrize("name,cond,pred", OPERATOR_CASES,
                         ids=[x[0] for x in OPERATOR_CASES])
def test_operator(c, name, cond, pred):
    want = expect_ids(pred)
    got = c.list_all({"filters": {"AND": [cond]}})
    assert got == want
    if name not in ("eq-bool-is-not-number", "gt-type-mismatch"):
        assert 0 < len(want), name


def test_all_fifteen_operators_covered():
    ops = {case[1].get("operator", "eq") for case in OPERATOR_CASES}
    assert ops == set(mixpeek_server.OPERATORS)


def test_logical_combinations(c):
    def failed(t):
        return t["status"] == "FAILED"

    def media_or_docs(t):
        return _ad(t)["bucket_id"] in ("bkt_media", "bkt_docs")

    def timeout(t):
        return "timeout" in t["description"].lower()

    st_failed = {"field": "status", "value": "FAILED"}
    media = {"field": "additional_data.bucket_id", "value": "bkt_media"}
    docs = {"field": "additional_data.bucket_id", "value": "bkt_docs"}
    tmo = {"field": "description", "operator": "contains",
           "value": "timeout"}
    # AND + OR + NOT in one object are ANDed
    got = c.list_all({"filters": {"AND": [st_failed], "OR": [media, docs],
                                  "NOT": [tmo]}})
    assert got == expect_ids(lambda t: failed(t) and media_or_docs(t) and
                             not timeout(t))
    # NOT as a single object: not in the published schema (an array)
    c.list({"filters": {"NOT": tmo}}, expect=422)
    # NOT[a, b] = not a and not b
    assert c.list_all({"filters": {"NOT": [media, docs]}}) == \
        expect_ids(lambda t: not media_or_docs(t))
    # nesting: OR of two ANDs, with a NOT inside
    f = {"OR": [{"AND": [st_failed, {"NOT": [tmo]}]},
                {"AND": [media, {"field": "status", "value": "PENDING"}]}]}
    assert c.list_all({"filters": f}) == expect_ids(
        lambda t: (failed(t) and not timeout(t)) or
        (_ad(t)["bucket_id"] == "bkt_media" and t["status"] == "PENDING"))
    # shorthand keys, ANDed, case-insensitive by default
    assert c.list_all({"filters": {"status": "failed",
                                   "additional_data.bucket_id":
                                   "BKT_MEDIA"}}) == \
        expect_ids(lambda t: failed(t) and
                   _ad(t)["bucket_id"] == "bkt_media")
    # empty and null groups are ignored
    assert c.list({"filters": {"AND": [], "OR": None}}, limit=1000)[
        "results"] == c.list(limit=1000)["results"]
    # status, task_type, filters and search combine with AND
    body = {"status": "FAILED", "task_type": "thumbnail",
            "filters": media, "search": "OOM"}
    assert c.list_all(body) == expect_ids(
        lambda t: failed(t) and t["task_type"] == "thumbnail" and
        _ad(t)["bucket_id"] == "bkt_media" and
        "oom" in json.dumps(t, ensure_ascii=False).lower())


def _nest(levels):
    node = {"field": "status", "value": "FAILED"}
    group = {"AND": [node]}
    for _ in range(levels - 1):
        group = {"AND": [group]}
    return group


def test_nesting_depth_limit(c):
    n_failed = len(expect_ids(lambda t: t["status"] == "FAILED"))
    assert len(c.list_all({"filters": _nest(10)})) == n_failed
    assert_422(c, {"filters": _nest(11)}, "nested too deeply")
    # a body nested far beyond Python's recursion limit is rejected too
    deep = '{"filters":' + '{"AND":[' * 3000 + "{}" + "]}" * 3000 + "}"
    assert_422(c, deep.encode())


def test_case_sensitive(c):
    n_failed = len(expect_ids(lambda t: t["status"] == "FAILED"))
    lower = {"field": "status", "value": "failed"}
    upper = {"field": "status", "value": "FAILED"}

    def count(filters):
        return c.list({"filters": filters}, limit=1, include_total=1)[
            "pagination"]["total"]
    assert count({"AND": [lower]}) == n_failed
    assert count({"case_sensitive": True, "AND": [lower]}) == 0
    assert count({"case_sensitive": True, "AND": [upper]}) == n_failed
    # inherited by nested groups, unless they override it
    assert count({"case_sensitive": True, "AND": [{"OR": [lower]}]}) == 0
    assert count({"case_sensitive": True,
                  "AND": [{"case_sensitive": False, "OR": [lower]}]}) == \
        n_failed
    # inside a condition (the filters guide's form)
    assert count({"AND": [dict(lower, case_sensitive=True)]}) == 0
    assert count({"case_sensitive": True,
                  "AND": [dict(lower, case_sensitive=False)]}) == n_failed
    # regex and shorthand follow it; numbers are unaffected
    rx = {"field": "description", "operator": "regex", "value": "^worker"}
    n_worker = len(expect_ids(
        lambda t: t["description"].lower().startswith("worker")))
    assert n_worker > 0
    assert count({"AND": [rx]}) == n_worker
    assert count({"case_sensitive": True, "AND": [rx]}) == 0
    assert count({"case_sensitive": True, "status": "failed"}) == 0
    assert count({"case_sensitive": True,
                  "additional_data.total_tiers": 1}) == \
        len(expect_ids(lambda t: _ad(t)["total_tiers"] == 1))


# ------------------------------------------------------- sort, search

def test_sort(c):
    def ids_for(field, direction):
        return c.list_all({"sort": {"field": field, "direction": direction}})

    def oc(t):
        return _ad(t)["object_count"]
    by_id = sorted(DATA, key=lambda t: t["task_id"])
    assert ids_for("additional_data.object_count", "asc") == \
        [t["task_id"] for t in sorted(by_id, key=oc)]
    assert ids_for("additional_data.object_count", "desc") == \
        [t["task_id"] for t in sorted(by_id, key=oc, reverse=True)]
    # direction defaults to asc
    assert c.list_all({"sort": {"field": "task_id"}}) == \
        [t["task_id"] for t in by_id]
    # missing fields sort last in both directions
    has = [t for t in by_id if "progress" in _ad(t)]
    lacks = [t["task_id"] for t in by_id if "progress" not in _ad(t)]
    for direction in ("asc", "desc"):
        got = ids_for("additional_data.progress", direction)
        want = sorted(has, key=lambda t: _ad(t)["progress"],
                      reverse=direction == "desc")
        assert got == [t["task_id"] for t in want] + lacks
    assert ids_for("created_at", "desc") == [t["task_id"] for t in ORDERED]


def _search_pred(term):
    term = term.lower()

    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)

    def pred(t):
        top = [t["task_id"], t["task_type"], t["status"], t["description"]]
        return any(term in s.lower()
                   for s in top + list(strings(t["additional_data"])))
    return pred


@pytest.mark.parametrize("term", ["TIMEOUT", "oom", "bkt_media",
                                  "ns_acme", "clip-vit", "東京", "thumbnail",
                                  "Canceled", "raysubmit_a"])
def test_search(c, term):
    want = expect_ids(_search_pred(term))
    assert want
    assert c.list_all({"search": term}) == want
    if term.lower() in ("timeout", "oom"):
        assert all(BY_ID[i]["status"] == "FAILED" for i in want)


# ------------------------------------------------------ get and delete

def test_get(c):
    t = DATA[5]
    assert c.json("GET", "/v1/tasks/" + t["task_id"]) == t
    env = c.json("GET", "/v1/tasks/task_000000000000", expect=404)
    assert env == {"success": False, "status": 404, "error": {
        "message": "Task task_000000000000 not found",
        "type": "NotFoundError",
        "details": {"resource": "task", "id": "task_000000000000"}}}
    c.json("GET", "/v1/tasks/list", expect=404)


def test_weird_ids():
    srv, c = start(count=20, seed=1, weird=True)
    try:
        ids = c.list_all()
        assert len(ids) == 24 and {"task/evil", ".."} <= set(ids)
        for tid in ids:
            enc = urllib.parse.quote(tid, safe="").replace(".", "%2E")
            assert c.json("GET", "/v1/tasks/" + enc)["task_id"] == tid
        c.json("GET", "/v1/tasks/task/evil", expect=404)
        t = c.json("GET", "/v1/tasks/task_weird_keys")
        assert {"", ".", "..", "a/b", "a%2Fb"} <= set(t["additional_data"])
    finally:
        srv.stop()


def test_delete(fresh):
    c = fresh
    tasks = c.json("GET", "/_test/dataset", auth=False)
    active = next(t for t in tasks if t["status"] == "IN_PROGRESS")
    done = next(t for t in tasks if t["status"] == "COMPLETED")
    n_canceled = c.list({"status": "CANCELED"}, include_total=1)[
        "pagination"]["total"]
    ok = {"message": "Successfully deleted", "success": True}
    for _ in range(2):
        assert c.json("DELETE", "/v1/tasks/" + active["task_id"]) == ok
    got = c.json("GET", "/v1/tasks/" + active["task_id"])
    assert got["status"] == "CANCELED"
    assert got["updated_at"] >= active["updated_at"]
    assert c.json("DELETE", "/v1/tasks/" + done["task_id"]) == ok
    assert c.json("GET", "/v1/tasks/" + done["task_id"]) == done
    assert c.json("DELETE", "/v1/tasks/nope") == ok
    assert c.list({"status": "CANCELED"}, include_total=1)[
        "pagination"]["total"] == n_canceled + 1


# ---------------------------------------------------- control endpoints

def test_stats_log_reset(c):
    c.json("POST", "/v1/tasks/list?limit=3&offset=2", {"status": "FAILED"},
           headers={"X-Namespace": "ns_acme"})
    c.json("GET", "/v1/tasks/" + DATA[0]["task_id"],
           headers={"X-Namespace": "ns_retail"})
    c.json("DELETE", "/v1/tasks/nope")
    c.json("GET", "/v1/other", expect=404)
    c.json("POST", "/v1/tasks/list?limit=0", expect=422)
    stats = c.json("GET", "/_test/stats", auth=False)
    assert stats == {"requests": {"list": 2, "get": 1, "delete": 1,
                                  "other": 1, "total": 5},
                     "status_codes": {"200": 3, "404": 1, "422": 1},
                     "namespaces": ["ns_acme", "ns_retail"],
                     "auth_failures": 0,
                     "limits": {"refused_rate": 0, "refused_concurrency": 0,
                                "max_in_flight": 1}}
    log = c.json("GET", "/_test/log", auth=False)
    assert all(isinstance(e.pop("time"), float) for e in log), log
    assert log[0] == {"method": "POST", "path": "/v1/tasks/list",
                      "query": {"limit": "3", "offset": "2"},
                      "body": {"status": "FAILED"}, "status": 200,
                      "namespace": "ns_acme",
                      "content_type": "application/json", "limited": None}
    assert [e["status"] for e in log] == [200, 200, 200, 404, 422]
    assert log[1]["body"] is None and log[1]["namespace"] == "ns_retail"
    c.json("POST", "/_test/reset", auth=False)
    assert c.json("GET", "/_test/log", auth=False) == []
    assert c.json("GET", "/_test/stats", auth=False)["requests"]["total"] \
        == 0


def test_mutate_and_add_tasks(fresh):
    c = fresh
    tasks = c.json("GET", "/_test/dataset", auth=False)
    t = next(x for x in tasks if x["status"] == "PENDING")
    n_failed = len(c.list_all({"status": "FAILED"}))
    got = c.json("POST", "/_test/tasks/" + t["task_id"],
                 {"status": "FAILED", "error": "boom"}, auth=False)
    assert got["status"] == "FAILED" and got["updated_at"] > t["updated_at"]
    assert list(got) == list(t)
    assert c.json("GET", "/v1/tasks/" + t["task_id"]) == got
    assert len(c.list_all({"status": "FAILED"})) == n_failed + 1
    c.json("POST", "/_test/tasks/nope", {"status": "FAILED"}, auth=False,
           expect=404)
    c.json("POST", "/_test/tasks/" + t["task_id"], {"task_id": "x"},
           auth=False, expect=422)
    new = {"task_id": "task_added000001", "task_type": "future_type",
           "status": "SOMETHING_NEW", "created_at": "2027-01-01T00:00:00Z",
           "extra": {"k": 1}}
    assert c.json("PUT", "/_test/tasks", new, auth=False,
                  expect=201) == new
    assert c.json("PUT", "/_test/tasks", new, auth=False) == new
    assert c.list(limit=1)["results"] == [new]
    assert c.json("GET", "/v1/tasks/task_added000001") == new
    c.json("PUT", "/_test/tasks", {"status": "x"}, auth=False, expect=422)
    c.json("POST", "/_test/reset", {"dataset": True}, auth=False)
    assert c.json("GET", "/_test/dataset", auth=False) == tasks


def test_put_exact_text(fresh):
    c = fresh
    text = ('{"task_id":"task_exact","status":"PENDING","n":1E+2,'
            '"z":0.0,"big":9007199254740993,"f":0.30000000000000004,'
            '"s":"a\\u0000b"}')
    got = c.json("PUT", "/_test/tasks?exact=1", text, auth=False,
                 expect=201)
    assert got["n"] == 100.0 and got["s"] == "a\0b"
    status, _, data = c.req("GET", "/v1/tasks/task_exact")
    assert status == 200 and data == text.encode()
    page = c.req("POST", "/v1/tasks/list?limit=1000")[2].decode()
    assert text in page
    # filters see the values
    assert c.list_all({"filters": {"AND": [
        {"field": "n", "operator": "eq", "value": 100}]}}) == ["task_exact"]
    # without exact=1 (and after a change) the task is re-serialised
    c.json("PUT", "/_test/tasks", text, auth=False)
    assert c.req("GET", "/v1/tasks/task_exact")[2] != text.encode()
    c.json("PUT", "/_test/tasks?exact=1", text, auth=False)
    c.json("POST", "/_test/tasks/task_exact", {"status": "FAILED"},
           auth=False)
    assert b'"n":100.0' in c.req("GET", "/v1/tasks/task_exact")[2]
    c.json("PUT", "/_test/tasks?exact=maybe", text, auth=False,
           expect=422)


def test_change_key(fresh):
    c = fresh
    c.json("POST", "/_test/key", {"key": "sk_rotated"}, auth=False)
    c.json("POST", "/v1/tasks/list", expect=401)
    c.json("POST", "/v1/tasks/list",
           headers={"Authorization": "Bearer sk_rotated"})
    c.json("POST", "/_test/key", {"key": ""}, auth=False, expect=422)
    c.json("POST", "/_test/key", {"key": KEY}, auth=False)
    c.list(limit=1)


def test_injected_status_types(c):
    for code, etype in ((401, "UnauthorizedError"), (403, "ForbiddenError"),
                        (502, "BadGatewayError"), (418,
                                                   "InternalServerError")):
        c.faults(error_rate=1, error_status=code)
        env = c.list(expect=code)
        assert env["error"]["type"] == etype and env["status"] == code


def test_log_time(c):
    """Every log entry has the server's time.time() of its reply."""
    t0 = time.time()
    c.list(limit=1)
    t1 = time.time()
    c.faults(latency_ms=300)
    c.json("GET", "/v1/tasks/" + DATA[0]["task_id"])
    t2 = time.time()
    log = c.json("GET", "/_test/log", auth=False)
    assert [e["status"] for e in log] == [200, 200]
    assert t0 <= log[0]["time"] <= t1, (t0, log[0], t1)
    # set when the reply goes out, after the latency
    assert t1 + 0.3 <= log[1]["time"] <= t2, (t1, log[1], t2)


def test_error_message(c):
    text = "boom\nmixpeekfs: info: FORGED\x1b[31mred"
    assert c.faults(fail_next=2, error_status=400,
                    error_message=text)["error_message"] == text
    for method, path in (("POST", "/v1/tasks/list"),
                         ("GET", "/v1/tasks/" + DATA[0]["task_id"])):
        env = c.json(method, path, expect=400)
        assert env["error"] == {"message": text, "type": "BadRequestError",
                                "details": None}
    c.list(limit=1)
    c.faults(error_rate=1, error_status=500, error_message="")
    assert c.list(expect=500)["error"]["message"] == ""
    # the default text, and 429s keep their own
    c.faults(fail_next=1)
    assert c.list(expect=503)["error"]["message"].startswith(
        "Injected fault")
    c.faults(rate_429=1, error_message="x")
    assert c.list(expect=429)["error"]["message"] == "Rate limit exceeded"
    env = c.json("POST", "/_test/faults", {"error_message": 5}, auth=False,
                 expect=422)
    assert "error_message" in env["error"]["message"]


def test_fault_config(c):
    cfg = c.faults(error_rate=0.5, seed=4)
    assert cfg["error_rate"] == 0.5 and cfg["error_status"] == 503
    assert c.json("GET", "/_test/faults", auth=False) == cfg
    env = c.json("POST", "/_test/faults", {"error_rat": 1}, auth=False,
                 expect=422)
    assert "error_rat" in env["error"]["message"]
    c.json("POST", "/_test/faults", {"bad": "nonsense"}, auth=False,
           expect=422)
    c.json("POST", "/_test/faults", {"error_rate": 2}, auth=False,
           expect=422)
    assert c.faults()["error_rate"] == 0


# ---------------------------------------------------------------- faults

def test_fail_next_and_error_rate(c):
    c.faults(fail_next=2)
    for _ in range(2):
        env = c.list(expect=503)
        assert env["error"]["type"] == "ServiceUnavailableError"
        assert env["status"] == 503 and env["success"] is False
    c.list()
    assert c.json("GET", "/_test/faults", auth=False)["fail_next"] == 0
    c.faults(error_rate=1, error_status=500)
    env = c.json("GET", "/v1/tasks/x", expect=500)
    assert env["error"]["type"] == "InternalServerError"
    # /_test is never faulted
    assert c.json("GET", "/_test/stats", auth=False)["status_codes"] == \
        {"200": 1, "500": 1, "503": 2}
    c.faults(error_rate=0.5, seed=11)
    codes = [c.req("POST", "/v1/tasks/list?limit=1")[0] for _ in range(40)]
    assert 5 < codes.count(503) < 35 and codes.count(200) + \
        codes.count(503) == 40


def test_rate_429_and_garbage(c):
    c.faults(rate_429=1, retry_after=7)
    status, resp, data = c.req("POST", "/v1/tasks/list")
    assert status == 429 and resp.getheader("Retry-After") == "7"
    env = json.loads(data)
    assert env["error"]["type"] == "TooManyRequestsError"
    assert env["error"]["details"]["retry_after"] == 7
    c.faults(garbage_rate=1)
    status, resp, data = c.req("GET", "/v1/tasks/" + DATA[0]["task_id"])
    assert status == 200 and data.startswith(b"<html>oops")
    with pytest.raises(ValueError):
        json.loads(data)


def test_latency(c):
    c.faults(latency_ms=150)
    t0 = time.monotonic()
    c.list(limit=1)
    assert time.monotonic() - t0 >= 0.15
    t0 = time.monotonic()
    c.json("GET", "/_test/stats", auth=False)
    assert time.monotonic() - t0 < 0.15


def _quiet_req(client, path):
    try:
        client.req("GET", path, timeout=30)
    except OSError:     # the hung request is dropped at shutdown
        pass


def test_hang_does_not_block(fresh):
    c = fresh
    c.faults(hang=True)
    t0 = time.monotonic()
    with pytest.raises(OSError):     # socket.timeout is an OSError
        c.req("POST", "/v1/tasks/list", timeout=0.5)
    assert time.monotonic() - t0 < 2
    # other requests are served meanwhile
    log = c.json("GET", "/_test/log", auth=False)
    assert log[-1]["status"] is None and log[-1]["time"] is None
    c.faults()
    assert c.list(limit=1)["results"]
    c.faults(hang=True)
    hung = threading.Thread(target=_quiet_req, args=(c, "/v1/tasks/x"),
                            daemon=True)
    hung.start()
    time.sleep(0.2)
    # teardown (srv.stop) must not wait for the hung request


def test_hang_and_shutdown():
    srv, c = start(count=10, seed=1)
    c.faults(hang=True)
    threading.Thread(target=_quiet_req, args=(c, "/v1/tasks/x"),
                     daemon=True).start()
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 2


def test_bad_truncated_json(c):
    c.faults(bad="truncated_json")
    for path in ("/v1/tasks/list?limit=5", "/v1/tasks/" + DATA[0]["task_id"]):
        status, resp, data = c.req("POST" if "list" in path else "GET", path)
        assert status == 200
        assert int(resp.getheader("Content-Length")) == len(data)
        assert data.startswith(b"{")
        with pytest.raises(ValueError):
            json.loads(data)


def test_bad_wrong_types_and_missing_id(c):
    c.faults(bad="wrong_types")
    res = c.list(limit=8)["results"]
    assert any(isinstance(t["status"], int) for t in res)
    assert any(isinstance(t["additional_data"], str) for t in res)
    assert isinstance(c.json("GET", "/v1/tasks/" + DATA[0]["task_id"])[
        "status"], int)
    c.faults(bad="missing_task_id")
    res = c.list(limit=9)["results"]
    assert sum("task_id" not in t for t in res) == 3
    assert "task_id" not in c.json("GET", "/v1/tasks/" + DATA[0]["task_id"])


def test_bad_paging_modes(c):
    c.faults(bad="duplicate_ids")
    p1 = c.list(limit=10)
    p2 = c.list(limit=10, cursor=p1["pagination"]["next_cursor"])
    assert p2["results"][0] == p1["results"][-1]
    assert [t["task_id"] for t in p1["results"] + p2["results"][1:]] == \
        [t["task_id"] for t in ORDERED[:20]]
    c.faults(bad="short_page")
    p1 = c.list(limit=10)
    assert len(p1["results"]) == 5 and p1["pagination"]["next_cursor"]
    p2 = c.list(limit=10, cursor=p1["pagination"]["next_cursor"])
    assert p2["results"][0] == ORDERED[5]
    c.faults(bad="long_page")
    p1 = c.list(limit=10)
    assert len(p1["results"]) == 15
    p2 = c.list(limit=10, cursor=p1["pagination"]["next_cursor"])
    assert p2["results"][0] == ORDERED[15]
    c.faults(bad="cursor_loop")
    cur = c.list(limit=10)["pagination"]["next_cursor"]
    for _ in range(3):
        page = c.list(limit=10, cursor=cur)
        assert page["pagination"]["next_cursor"] == cur
    empty = c.list({"status": "FAILED", "search": "zzzz-none"})
    assert empty["results"] == [] and empty["pagination"]["next_cursor"]


def test_bad_deep_nesting(c):
    c.faults(bad="deep_nesting")
    for method, path in (("POST", "/v1/tasks/list?limit=3"),
                         ("GET", "/v1/tasks/" + DATA[1]["task_id"])):
        status, resp, data = c.req(method, path)
        assert status == 200
        text = data.decode()
        assert text.count('{"level":') == 1000
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(5000)
        try:
            json.loads(text)
        finally:
            sys.setrecursionlimit(old)


def test_bad_huge_body(c):
    c.faults(bad="huge_body", huge_bytes=3_000_000)
    status, resp, data = c.req("POST", "/v1/tasks/list?limit=2")
    assert status == 200 and len(data) == 3_000_000
    assert len(json.loads(data)["results"]) == 2
    status, resp, data = c.req("GET", "/v1/tasks/" + DATA[0]["task_id"])
    assert len(data) == 3_000_000
    assert json.loads(data)["task_id"] == DATA[0]["task_id"]
    # the default: 200 MiB announced; read only the start, then hang up
    c.faults(bad="huge_body")
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    conn.request("POST", "/v1/tasks/list?limit=1",
                 headers={"Authorization": "Bearer " + KEY})
    resp = conn.getresponse()
    assert int(resp.getheader("Content-Length")) == 200 * 1024 * 1024
    assert resp.read(4096).startswith(b'{"results":[')
    conn.close()
    c.faults()
    assert c.list(limit=1)["results"]


ENDLESS_KEYS = list(DATA[0])


def endless_n(task_id):
    assert task_id.startswith("task_endless_"), task_id
    return int(task_id[len("task_endless_"):])


def test_bad_cursor_endless(c):
    c.faults(bad="cursor_endless")
    seen, cursors = set(), set()
    p = c.list(limit=50, include_total=1)
    first = endless_n(p["results"][0]["task_id"])
    for i in range(30):        # beyond the real 24 pages of 50
        res = p["results"]
        assert len(res) == 50
        ids = [t["task_id"] for t in res]
        ns = [endless_n(tid) for tid in ids]
        assert ns == list(range(ns[0], ns[0] + 50))
        assert not seen & set(ids)
        seen |= set(ids)
        for t in res:
            assert list(t) == ENDLESS_KEYS
            assert t["status"] in dataset.STATUSES
            assert t["task_type"] in dataset.TASK_TYPES
            assert t == mixpeek_server.endless_task(endless_n(t["task_id"]))
        assert [t["created_at"] for t in res] == \
            sorted((t["created_at"] for t in res), reverse=True)
        pag = p["pagination"]
        assert pag == {"total": COUNT, "page": i + 1, "page_size": 50,
                       "total_pages": 24, "next_page": None,
                       "previous_page": None,
                       "next_cursor": pag["next_cursor"]}
        cur = pag["next_cursor"]
        assert cur and cur not in cursors
        cursors.add(cur)
        p = c.list(limit=50, include_total=1, cursor=cur)
    assert len(seen) == 1500
    # the failed tasks of the data set: their real total, new ids again
    p = c.list({"status": "FAILED"}, limit=5, offset=40, include_total=1)
    n_failed = sum(t["status"] == "FAILED" for t in DATA)
    assert p["pagination"]["total"] == n_failed
    assert p["pagination"]["page"] == 9
    assert endless_n(p["results"][0]["task_id"]) == first + 31 * 50
    # the cursor is one of that query: another query refuses it
    assert_422(c, {"status": "PENDING"}, "different query", limit=5,
               cursor=p["pagination"]["next_cursor"])
    # a served task can be got while the mode is on, a future one not
    last = max(seen, key=endless_n)
    assert c.json("GET", "/v1/tasks/" + last) == \
        mixpeek_server.endless_task(endless_n(last))
    c.json("GET", "/v1/tasks/task_endless_%d" % (endless_n(last) + 10 ** 6),
           expect=404)
    c.json("GET", "/v1/tasks/task_endless_0", expect=404)
    # the numbers go on after a reset, and without the mode a cursor of
    # it is a plain cursor (position 30 * 50: past the end)
    c.json("POST", "/_test/reset", {"dataset": True, "faults": True},
           auth=False)
    c.json("GET", "/v1/tasks/" + last, expect=404)
    assert c.list(limit=50, cursor=cur) == {"results": [], "pagination": {
        "total": None, "page": None, "page_size": None,
        "total_pages": None, "next_page": None, "previous_page": None,
        "next_cursor": None}}
    c.faults(bad="cursor_endless")
    p = c.list(limit=1)
    assert endless_n(p["results"][0]["task_id"]) > endless_n(last) + 5
    assert p["pagination"]["total"] is None


def test_bad_cursor_endless_without_timestamps():
    srv, c = start(count=10, seed=1, timestamps=False)
    try:
        c.faults(bad="cursor_endless")
        t = c.list(limit=1)["results"][0]
        assert "created_at" not in t and "updated_at" not in t
        assert list(t) == ENDLESS_KEYS[:-2]
        assert c.list(limit=3)["results"][0]["task_id"] == "task_endless_2"
    finally:
        srv.stop()


def test_bad_cursor_endless_nototal(c):
    c.faults(bad="cursor_endless_nototal")
    seen = set()
    p = c.list({"task_type": "thumbnail"}, limit=100, include_total=1)
    for _ in range(12):
        ids = {t["task_id"] for t in p["results"]}
        assert len(ids) == 100 and not ids & seen
        seen |= ids
        pag = p["pagination"]
        assert pag["next_cursor"]
        assert {k: v for k, v in pag.items() if k != "next_cursor"} == {
            "total": None, "page": None, "page_size": None,
            "total_pages": None, "next_page": None, "previous_page": None}
        p = c.list({"task_type": "thumbnail"}, limit=100, include_total=1,
                   cursor=pag["next_cursor"])
    tid = min(seen, key=endless_n)
    assert c.json("GET", "/v1/tasks/" + tid)["task_id"] == tid


def test_bad_cursor_cycle(c):
    c.faults(bad="cursor_cycle")
    p = c.list(limit=10, include_total=1)
    got, curs = [], []
    for _ in range(7):
        got.append([t["task_id"] for t in p["results"]])
        curs.append(p["pagination"]["next_cursor"])
        assert p["pagination"]["total"] == COUNT
        p = c.list(limit=10, include_total=1, cursor=curs[-1])
    a, b = curs[0], curs[1]
    assert a and b and a != b
    assert curs == [a, b, a, b, a, b, a]
    ids = [t["task_id"] for t in ORDERED]
    assert got == [ids[0:10], ids[10:20], ids[20:30], ids[10:20],
                   ids[20:30], ids[10:20], ids[20:30]]
    # the tokens are the plain cursors of positions 10 and 20
    c.faults()
    assert c.list(limit=10)["pagination"]["next_cursor"] == a
    assert c.list(limit=10, cursor=a)["pagination"]["next_cursor"] == b
    c.faults(bad="cursor_cycle")
    # by page number: offset 20 is page 3 (A), offset 15 page 2 (B)
    assert c.list(limit=10, offset=20)["pagination"]["next_cursor"] == a
    assert c.list(limit=10, offset=15)["pagination"]["next_cursor"] == b
    # more results always "follow", even with none at all
    empty = c.list({"search": "zzzz-none"}, limit=10)
    assert empty["results"] == [] and empty["pagination"]["next_cursor"]
    last = c.list(limit=1000, offset=1000)
    assert len(last["results"]) == 200 and \
        last["pagination"]["next_cursor"]


def test_bad_total_huge(c):
    c.faults(bad="total_huge")
    p = c.list(limit=7, include_total=1)
    assert [t["task_id"] for t in p["results"]] == \
        [t["task_id"] for t in ORDERED[:7]]
    pag = p["pagination"]
    assert pag["total"] == 100000000000000 == 10 ** 14
    assert pag["total_pages"] == 14285714285715
    assert pag["page"] == 1 and pag["page_size"] == 7
    p2 = c.list(limit=7, include_total=1, cursor=pag["next_cursor"])
    assert [t["task_id"] for t in p2["results"]] == \
        [t["task_id"] for t in ORDERED[7:14]]
    assert p2["pagination"]["page"] == 2
    assert p2["pagination"]["total"] == 10 ** 14
    # the real end still ends; without include_total no total
    end = c.list(limit=1000, offset=1000, include_total=1)
    assert len(end["results"]) == 200
    assert end["pagination"]["next_cursor"] is None
    assert end["pagination"]["total_pages"] == 10 ** 11
    assert c.list(limit=3)["pagination"]["total"] is None
    assert c.list({"status": "FAILED"}, limit=3, include_total=1)[
        "pagination"]["total"] == 10 ** 14


BOMB = 5 * 1024 * 1024


def bomb_req(c, method, path, encoding):
    hdrs = {} if encoding is None else {"Accept-Encoding": encoding}
    return c.req(method, path, headers=hdrs)


def test_bad_gzip_bomb(c):
    c.faults(bad="gzip_bomb", huge_bytes=BOMB)
    tid = DATA[3]["task_id"]
    for method, path in (("POST", "/v1/tasks/list?limit=3"),
                         ("GET", "/v1/tasks/" + tid)):
        status, resp, data = bomb_req(c, method, path, "gzip")
        assert status == 200
        assert resp.getheader("Content-Encoding") == "gzip"
        assert resp.getheader("Content-Type") == "application/json"
        assert int(resp.getheader("Content-Length")) == len(data)
        assert len(data) < BOMB // 500
        text = zlib.decompress(data, 31)
        assert gzip.decompress(data) == text
        assert len(text) == BOMB
        doc = json.loads(text)
        assert set(doc["padding"]) == {"x"}
        if method == "POST":
            assert [t["task_id"] for t in doc["results"]] == \
                [t["task_id"] for t in ORDERED[:3]]
            assert doc["pagination"]["next_cursor"]
        else:
            del doc["padding"]
            assert doc == DATA[3]
    # what allows gzip, and what does not (then: plain, as huge_body)
    for enc, gz in (("deflate, gzip, br, zstd", True), ("x-gzip", True),
                    ("br, *;q=0.5", True), ("GZIP;q=0.1", True),
                    ("gzip;q=0", False), ("*, gzip;q=0", False),
                    ("identity", False), ("br", False), ("", False),
                    (None, False)):
        status, resp, data = bomb_req(c, "GET", "/v1/tasks/" + tid, enc)
        assert status == 200
        if gz:
            assert resp.getheader("Content-Encoding") == "gzip", enc
            assert len(zlib.decompress(data, 31)) == BOMB
        else:
            assert resp.getheader("Content-Encoding") is None, enc
            assert len(data) == BOMB
            assert json.loads(data)["task_id"] == tid
    # other sizes (not a whole number of 1 MiB chunks, smaller than one)
    for size in (3_000_001, 100_000, 10):
        c.faults(bad="gzip_bomb", huge_bytes=size)
        status, resp, data = bomb_req(c, "POST", "/v1/tasks/list?limit=2",
                                      "gzip")
        text = zlib.decompress(data, 31)
        assert len(json.loads(text)["results"]) == 2
        assert len(text) == size if size > 10 else len(text) > size
    # errors are not padded
    status, resp, data = bomb_req(c, "GET", "/v1/tasks/nope", "gzip")
    assert status == 404 and resp.getheader("Content-Encoding") is None
    assert json.loads(data)["error"]["type"] == "NotFoundError"


def test_bad_gzip_bomb_default_size(c):
    c.faults(bad="gzip_bomb")
    t0 = time.monotonic()
    status, resp, data = bomb_req(c, "POST", "/v1/tasks/list?limit=1",
                                  "gzip")
    assert time.monotonic() - t0 < 5
    assert status == 200 and len(data) < 400_000
    d = zlib.decompressobj(31)
    head = d.decompress(data, 4096)
    assert head.startswith(b'{"results":[{"task_id":"%s"'
                           % ORDERED[0]["task_id"].encode())
    n = len(head)
    while not d.eof:
        out = d.decompress(d.unconsumed_tail, 1 << 24)
        assert out or d.eof
        n += len(out)
    assert n == 200 * 1024 * 1024 and not d.unused_data


def test_forbid_ids(c):
    cfg = c.json("GET", "/_test/faults", auth=False)
    assert cfg["forbid_ids"] is None
    tid = DATA[0]["task_id"]
    forbid = [tid, "task/evil", "task_not_there"]
    assert c.faults(forbid_ids=forbid)["forbid_ids"] == forbid
    for task_id, path in ((tid, tid), ("task/evil", "task%2Fevil"),
                          ("task_not_there", "task_not_there")):
        for hdrs in ({}, {"X-Namespace": "ns_other"}):
            env = c.json("GET", "/v1/tasks/" + path, expect=403,
                         headers=hdrs)
            assert env == {"success": False, "status": 403, "error": {
                "message": "Forbidden: task %s belongs to another namespace"
                % task_id, "type": "ForbiddenError", "details": None}}
    c.json("GET", "/v1/tasks/" + tid, expect=401, auth=False)
    assert c.json("GET", "/v1/tasks/" + DATA[1]["task_id"]) == DATA[1]
    assert tid in c.list_all()
    assert tid in [t["task_id"] for t in c.list(limit=1000)["results"]]
    assert c.json("DELETE", "/v1/tasks/task_not_there")["success"] is True
    # before any bad mode
    c.faults(forbid_ids=[tid], bad="gzip_bomb", huge_bytes=100_000)
    status, resp, data = c.req("GET", "/v1/tasks/" + tid,
                               headers={"Accept-Encoding": "gzip"})
    assert status == 403 and resp.getheader("Content-Encoding") is None
    assert json.loads(data)["error"]["type"] == "ForbiddenError"
    for bad in ("x", [1], {"a": "b"}, ["ok", None], True):
        env = c.json("POST", "/_test/faults", {"forbid_ids": bad},
                     auth=False, expect=422)
        assert "forbid_ids" in env["error"]["message"]
        assert env["error"]["details"]["validation_errors"][0][
            "location"] == ["body", "forbid_ids"]
    assert c.json("GET", "/_test/faults", auth=False)["forbid_ids"] == [tid]
    assert c.faults(forbid_ids=[])["forbid_ids"] == []
    assert c.json("GET", "/v1/tasks/" + tid)["task_id"] == tid
    c.faults(forbid_ids=[tid])
    c.faults()
    assert c.json("GET", "/v1/tasks/" + tid)["task_id"] == tid


def test_bulk_put_tasks(fresh):
    c = fresh
    n = 60_000
    tasks = [{"task_id": "task_bulk_%05d" % i,
              "task_type": "thumbnail", "status": "STATUS_%05d" % i,
              "created_at": "2020-01-01T00:00:00Z"} for i in range(n)]
    t0 = time.monotonic()
    got = c.json("PUT", "/_test/tasks", tasks, auth=False, timeout=60)
    assert got == {"added": n, "replaced": 0}
    page = c.list(limit=1000, offset=200, include_total=1)
    assert time.monotonic() - t0 < 10
    assert page["pagination"]["total"] == 200 + n
    assert page["results"] == tasks[:1000]
    statuses = {t["status"] for t in c.list(
        {"task_type": "thumbnail"}, limit=1000, offset=10000)["results"]}
    assert len(statuses) == 1000
    assert c.list({"filters": {"status": "STATUS_54321"}}, limit=5)[
        "results"] == [tasks[54321]]
    assert c.json("GET", "/v1/tasks/task_bulk_59999") == tasks[-1]
    # replace two, add one; a repeated id counts as replaced the 2nd time
    more = [dict(tasks[1], status="FAILED"), dict(tasks[2], status="X"),
            {"task_id": "task_bulk_new"}, {"task_id": "task_bulk_new",
                                           "status": "PENDING"}]
    assert c.json("PUT", "/_test/tasks", more, auth=False) == \
        {"added": 1, "replaced": 3}
    assert c.json("GET", "/v1/tasks/task_bulk_00001")["status"] == "FAILED"
    assert c.json("GET", "/v1/tasks/task_bulk_new") == more[3]
    assert c.list(limit=1, include_total=1)["pagination"]["total"] == \
        200 + n + 1
    assert c.json("PUT", "/_test/tasks", [], auth=False) == \
        {"added": 0, "replaced": 0}
    # a bad element: 422 naming its index, nothing changes
    for body, idx in (([{"task_id": "task_bulk_a"}, {"x": 1}], 1),
                      ([5], 0), ([{"task_id": "task_bulk_a"},
                                  {"task_id": "task_bulk_b"},
                                  {"task_id": 7}], 2)):
        env = c.json("PUT", "/_test/tasks", body, auth=False, expect=422)
        assert env["error"]["message"].startswith("task %d: " % idx)
        assert env["error"]["details"]["validation_errors"][0][
            "location"] == ["body", idx, "task_id"]
    c.json("GET", "/v1/tasks/task_bulk_a", expect=404)
    env = c.json("PUT", "/_test/tasks?exact=1", [{"task_id": "task_bulk_a"}],
                 auth=False, expect=422)
    assert "exact" in env["error"]["message"]
    # the single-object form is unchanged
    assert c.json("PUT", "/_test/tasks", {"task_id": "task_bulk_a"},
                  auth=False, expect=201) == {"task_id": "task_bulk_a"}
    c.json("PUT", "/_test/tasks", {"task_id": "task_bulk_a"}, auth=False)


def test_bulk_put_body_limit(fresh):
    c = fresh
    big = [{"task_id": "task_big_%d" % i, "blob": "y" * 1000}
           for i in range(20_000)]      # about 20 MB: over 16 MiB
    assert c.json("PUT", "/_test/tasks", big, auth=False, timeout=60) == \
        {"added": 20_000, "replaced": 0}
    # announced sizes over the limits: 413 before any body byte is read
    for path, size in (("/_test/faults", 17 << 20),
                       ("/_test/tasks", 257 << 20)):
        with socket.create_connection(("127.0.0.1", c.port), 10) as s:
            s.sendall(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                      b"\r\n\r\n" % (path.encode(), size))
            assert s.recv(100).startswith(b"HTTP/1.1 413 ")


# ----------------------------------------------------------- rate limits

RL_NAMES = ("X-RateLimit-Limit", "X-RateLimit-Remaining",
            "X-RateLimit-Reset", "X-RateLimit-Window")
NO_LIMITS = {"rate_per_minute": 0, "burst": 0, "max_in_flight": 0,
             "headers": True}


@contextlib.contextmanager
def limited(**kw):
    """A small server of its own with these State() limits."""
    srv, client = start(count=20, seed=1, **kw)
    try:
        yield client
    finally:
        srv.stop()


def rl(resp):
    """The X-RateLimit-* headers of a reply (None for each one absent)."""
    return {name[len("X-RateLimit-"):]: resp.getheader(name)
            for name in RL_NAMES}


def key_hdr(key):
    return {"Authorization": "Bearer " + key}


def limits_stats(client):
    return client.json("GET", "/_test/stats", auth=False)["limits"]


def limited_marks(client):
    return [e["limited"] for e in client.json("GET", "/_test/log",
                                              auth=False)]


def rate_refusal(limit, retry_after):
    return {"success": False, "status": 429,
            "error": {"message": "Rate limit exceeded",
                      "type": "TooManyRequestsError",
                      "details": {"limit": limit, "window": "1m",
                                  "retry_after": retry_after}}}


def test_limits_bucket_refuses_then_refills():
    # 120/min: a token every 0.5 s, so the first four requests (a few
    # ms apart) see 3, 2, 1 and then less than one token
    with limited(rate_per_minute=120, burst=3) as c:
        t0 = time.time()
        got = []
        for _ in range(3):
            status, resp, _ = c.req("POST", "/v1/tasks/list?limit=1")
            assert status == 200
            got.append(rl(resp))
        assert [h["Remaining"] for h in got] == ["2", "1", "0"]
        assert all(h["Limit"] == "120" and h["Window"] == "60"
                   for h in got)
        # not full: Reset is when it will be (0.5 s a token), in the future
        resets = [int(h["Reset"]) for h in got]
        assert resets[0] >= t0 + 0.5 and resets[2] >= t0 + 1.5
        assert resets == sorted(resets) and resets[2] <= time.time() + 2.5
        status, resp, data = c.req("POST", "/v1/tasks/list?limit=1")
        refused_at = time.monotonic()
        assert status == 429, data
        assert json.loads(data) == rate_refusal(120, 1)
        assert resp.getheader("Retry-After") == "1"
        assert resp.getheader("Content-Type") == "application/json"
        assert rl(resp)["Remaining"] == "0"
        # one token is back within 0.5 s of the refusal: poll for it
        while True:
            status, resp, _ = c.req("POST", "/v1/tasks/list?limit=1")
            if status == 200:
                break
            assert status == 429
            assert time.monotonic() - refused_at < 0.5 + 1.0
            time.sleep(0.05)
        assert rl(resp)["Remaining"] == "0"
        stats = limits_stats(c)
        marks = limited_marks(c)
        assert stats["refused_rate"] >= 1
        assert stats["refused_concurrency"] == 0
        assert marks[:4] == [None, None, None, "rate"]
        assert set(marks[4:-1]) <= {"rate"} and marks[-1] is None
        assert marks.count("rate") == stats["refused_rate"]
        assert stats["max_in_flight"] == 1
        # reset clears the counters
        c.json("POST", "/_test/reset", auth=False)
        assert limits_stats(c) == {"refused_rate": 0,
                                   "refused_concurrency": 0,
                                   "max_in_flight": 0}


def test_limits_retry_after_reset_and_refill_on_change():
    # 6/min: a token every 10 s
    with limited(rate_per_minute=6, burst=1) as c:
        t0 = time.time()
        status, resp, _ = c.req("GET", "/v1/tasks/nope")
        assert status == 404
        h = rl(resp)
        assert h["Limit"] == "6" and h["Remaining"] == "0"
        assert t0 + 10 <= int(h["Reset"]) <= time.time() + 11
        status, resp, data = c.req("GET", "/v1/tasks/nope")
        assert status == 429 and resp.getheader("Retry-After") == "10"
        assert json.loads(data) == rate_refusal(6, 10)
        # a new config (even the same) refills every bucket
        assert c.json("POST", "/_test/limits",
                      {"rate_per_minute": 6, "burst": 1}, auth=False) == \
            {"rate_per_minute": 6, "burst": 1, "max_in_flight": 0,
             "headers": True}
        status, resp, _ = c.req("GET", "/v1/tasks/nope")
        assert status == 404 and rl(resp)["Remaining"] == "0"
        # a full bucket: Reset is now, rounded up
        c.json("POST", "/_test/limits", {"rate_per_minute": 6, "burst": 3},
               auth=False)
        c.req("GET", "/v1/tasks/nope")   # 2 left: full in 10 s
        t2 = time.time()
        status, resp, _ = c.req("GET", "/v1/tasks/nope")
        assert rl(resp)["Remaining"] == "1"     # full in 20 s
        assert t2 + 18 <= int(rl(resp)["Reset"]) <= time.time() + 21


def test_limits_refused_request_skips_faults_and_auth():
    with limited(rate_per_minute=6, burst=1) as c:
        c.list(limit=1)     # the key's only token (10 s to the next)
        # refused: no hang, no fail_next, no auth (the server now expects
        # another key), but the latency
        c.json("POST", "/_test/key", {"key": "sk_rotated"}, auth=False)
        c.faults(hang=True, fail_next=1, latency_ms=200)
        t0 = time.monotonic()
        status, resp, data = c.req("GET", "/v1/tasks/nope")
        assert time.monotonic() - t0 >= 0.2
        assert status == 429 and json.loads(data) == rate_refusal(6, 10)
        assert c.json("GET", "/_test/faults", auth=False)["fail_next"] == 1
        # accepted again (a new config refills): the faults and auth apply
        c.faults(fail_next=1)
        c.json("POST", "/_test/limits", {"rate_per_minute": 6, "burst": 1},
               auth=False)
        assert c.list(expect=503)["status"] == 503
        c.json("POST", "/_test/limits", {"rate_per_minute": 6, "burst": 1},
               auth=False)
        assert c.list(expect=401)["status"] == 401
        stats = c.json("GET", "/_test/stats", auth=False)
        assert stats["status_codes"] == {"200": 1, "401": 1, "429": 1,
                                         "503": 1}
        assert stats["auth_failures"] == 1
        assert stats["limits"]["refused_rate"] == 1


def test_limits_headers_on_every_reply():
    # 6/min, burst 100: a token every 10 s, so Remaining counts down
    # exactly, one per request
    with limited(rate_per_minute=6, burst=100) as c:
        task_id = c.json("GET", "/_test/dataset", auth=False)[0]["task_id"]
        t0 = time.time()
        remaining = []

        def check(method, path, expect, key=KEY, **kw):
            status, resp, data = c.req(method, path, auth=False,
                                       headers=key_hdr(key), **kw)
            assert status == expect, (method, path, status, data[:200])
            h = rl(resp)
            assert h["Limit"] == "6" and h["Window"] == "60", (path, h)
            rem = int(h["Remaining"])
            # not full: full again when the missing tokens are back
            assert t0 + 10 * (100 - rem - 1) <= int(h["Reset"]) <= \
                time.time() + 10 * (100 - rem) + 1, (path, h)
            if key == KEY:
                remaining.append(rem)
            return resp, data

        check("POST", "/v1/tasks/list?limit=2", 200)
        check("GET", "/v1/tasks/" + task_id, 200)
        check("DELETE", "/v1/tasks/nope", 200)
        check("HEAD", "/v1/tasks/" + task_id, 404)   # no HEAD route
        check("GET", "/v1/tasks/nope", 404)
        check("GET", "/elsewhere", 404)
        check("POST", "/v1/tasks/list?limit=0", 422)
        c.faults(fail_next=1)
        check("POST", "/v1/tasks/list", 503)
        c.faults(rate_429=1, retry_after=3)
        resp, _ = check("POST", "/v1/tasks/list", 429)
        assert resp.getheader("Retry-After") == "3"
        c.faults(garbage_rate=1)
        check("GET", "/v1/tasks/" + task_id, 200)
        c.faults(bad="huge_body", huge_bytes=100_000)
        _, data = check("POST", "/v1/tasks/list?limit=1", 200)
        assert len(data) == 100_000
        c.faults(bad="truncated_json")
        check("POST", "/v1/tasks/list?limit=1", 200)
        c.faults()
        assert remaining == list(range(99, 99 - 12, -1))
        # a 401: a wrong key has a bucket of its own
        resp, _ = check("POST", "/v1/tasks/list", 401, key="sk_wrong")
        assert rl(resp)["Remaining"] == "99"
        # a body that cannot be read: 400, the bucket as it is (no token)
        conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
        try:
            conn.putrequest("POST", "/v1/tasks/list")
            conn.putheader("Content-Length", "zz")
            conn.putheader("Authorization", "Bearer " + KEY)
            conn.endheaders()
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 400
            assert rl(resp)["Limit"] == "6"
            assert rl(resp)["Remaining"] == str(remaining[-1])
        finally:
            conn.close()
        check("GET", "/v1/tasks/nope", 404)
        assert remaining[-1] == 99 - 12
        # a rate 429 (a concurrency 429: test_limits_max_in_flight)
        c.json("POST", "/_test/limits", {"rate_per_minute": 60, "burst": 1},
               auth=False)
        status, resp, _ = c.req("POST", "/v1/tasks/list?limit=1")
        assert status == 200 and rl(resp)["Remaining"] == "0"
        status, resp, _ = c.req("POST", "/v1/tasks/list?limit=1")
        assert status == 429 and resp.getheader("Retry-After") == "1"
        assert rl(resp) == {"Limit": "60", "Remaining": "0",
                            "Reset": rl(resp)["Reset"], "Window": "60"}
        assert time.time() < int(rl(resp)["Reset"]) <= time.time() + 2
        # test endpoints carry none
        for path in ("/_test/stats", "/_test/limits", "/_test/log"):
            status, resp, _ = c.req("GET", path, auth=False)
            assert status == 200 and set(rl(resp).values()) == {None}


def test_limits_without_headers():
    with limited(rate_per_minute=120, burst=1,
                 ratelimit_headers=False) as c:
        assert c.json("GET", "/_test/limits", auth=False) == {
            "rate_per_minute": 120, "burst": 1, "max_in_flight": 0,
            "headers": False}
        status, resp, _ = c.req("POST", "/v1/tasks/list?limit=1")
        assert status == 200
        assert not any(k.lower().startswith("x-ratelimit")
                       for k, _ in resp.getheaders())
        status, resp, data = c.req("POST", "/v1/tasks/list?limit=1")
        assert status == 429 and resp.getheader("Retry-After") == "1"
        assert json.loads(data) == rate_refusal(120, 1)
        assert not any(k.lower().startswith("x-ratelimit")
                       for k, _ in resp.getheaders())
    # without a rate: no headers, even with a cap
    with limited(max_in_flight=5) as c:
        status, resp, _ = c.req("POST", "/v1/tasks/list?limit=1")
        assert status == 200 and set(rl(resp).values()) == {None}


def test_limits_separate_buckets_per_key():
    with limited(rate_per_minute=6, burst=1) as c:
        assert c.req("GET", "/v1/tasks/nope")[0] == 404
        assert c.req("GET", "/v1/tasks/nope")[0] == 429
        # another Bearer value (a wrong key: 401, but its own bucket)
        status, resp, _ = c.req("GET", "/v1/tasks/nope", auth=False,
                                headers=key_hdr("sk_other"))
        assert status == 401 and rl(resp)["Remaining"] == "0"
        assert c.req("GET", "/v1/tasks/nope", auth=False,
                     headers=key_hdr("sk_other"))[0] == 429
        # no Authorization, or not a Bearer one: the empty key's bucket
        assert c.req("GET", "/v1/tasks/nope", auth=False)[0] == 401
        assert c.req("GET", "/v1/tasks/nope", auth=False,
                     headers={"Authorization": "Basic " + KEY})[0] == 429
        assert c.req("GET", "/v1/tasks/nope")[0] == 429
        assert limits_stats(c)["refused_rate"] == 4
        assert limited_marks(c) == [None, "rate", None, "rate", None,
                                    "rate", "rate"]


def at_once(client, n):
    """n list requests started together: [(status, resp, data, secs)]."""
    results, barrier = [], threading.Barrier(n)

    def one():
        barrier.wait()
        t0 = time.monotonic()
        status, resp, data = client.req("POST", "/v1/tasks/list?limit=1")
        results.append((status, resp, data, time.monotonic() - t0))
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == n
    return results


def test_limits_max_in_flight():
    with limited(max_in_flight=2, latency_ms=400) as c:
        results = at_once(c, 3)
        assert sorted(r[0] for r in results) == [200, 200, 429]
        status, resp, data, took = next(r for r in results if r[0] == 429)
        assert json.loads(data) == {
            "success": False, "status": 429,
            "error": {"message": "Too many concurrent requests",
                      "type": "TooManyRequestsError",
                      "details": {"limit": 2, "window": "concurrent",
                                  "retry_after": 1}}}
        assert resp.getheader("Retry-After") == "1"
        assert set(rl(resp).values()) == {None}     # no rate set
        assert all(r[3] >= 0.4 for r in results)    # the 429 too
        assert limits_stats(c) == {"refused_rate": 0,
                                   "refused_concurrency": 1,
                                   "max_in_flight": 3}
        marks = limited_marks(c)
        assert len(marks) == 3 and marks.count("concurrency") == 1
        assert marks.count(None) == 2
        # the slot is free before the reply goes out: back to back
        # requests of one client never find themselves in flight
        c.json("POST", "/_test/limits", {"max_in_flight": 1}, auth=False)
        c.faults(latency_ms=0)
        for _ in range(20):
            assert c.req("GET", "/v1/tasks/nope")[0] == 404
        # a concurrency refusal takes no token
        c.json("POST", "/_test/reset", auth=False)
        c.json("POST", "/_test/limits", {"rate_per_minute": 6, "burst": 2,
                                         "max_in_flight": 1}, auth=False)
        c.faults(latency_ms=400)
        results = at_once(c, 2)
        assert sorted(r[0] for r in results) == [200, 429]
        accepted = next(r for r in results if r[0] == 200)
        refused = next(r for r in results if r[0] == 429)
        assert json.loads(refused[2])["error"]["details"]["window"] == \
            "concurrent"
        assert rl(accepted[1])["Remaining"] == "1"
        assert rl(refused[1])["Remaining"] == "1"
        c.faults()
        status, resp, _ = c.req("GET", "/v1/tasks/nope")
        assert status == 404 and rl(resp)["Remaining"] == "0"
        assert limits_stats(c) == {"refused_rate": 0,
                                   "refused_concurrency": 1,
                                   "max_in_flight": 2}


def test_limits_hang_holds_a_slot_until_released():
    """A request the hang fault holds counts in flight until the fault
    config is replaced: then its connection is closed, and the slot is
    free."""
    srv, c = start(count=5, seed=1, max_in_flight=1)
    try:
        c.faults(hang=True)
        held = threading.Thread(target=_quiet_req, args=(c, "/v1/tasks/x"),
                                daemon=True)
        held.start()
        deadline = time.monotonic() + 5
        while not c.json("GET", "/_test/log", auth=False):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        env = c.json("GET", "/v1/tasks/x", expect=429)
        assert env["error"]["details"]["window"] == "concurrent"
        assert limits_stats(c)["max_in_flight"] == 2
        c.faults()      # the held request ends, without an answer
        held.join(10)
        assert not held.is_alive()
        c.json("GET", "/v1/tasks/x", expect=404)
        assert limited_marks(c) == [None, "concurrency", None]
    finally:
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 2


def test_limits_endpoint_and_reset():
    with limited(rate_per_minute=60, burst=2, max_in_flight=4,
                 ratelimit_headers=False) as c:
        start_cfg = {"rate_per_minute": 60, "burst": 2, "max_in_flight": 4,
                     "headers": False}
        assert c.json("GET", "/_test/limits", auth=False) == start_cfg

        def post(cfg, expect=200):
            return c.json("POST", "/_test/limits", cfg, auth=False,
                          expect=expect)
        assert post({}) == NO_LIMITS
        assert post({"rate_per_minute": 30}) == {
            "rate_per_minute": 30, "burst": 30, "max_in_flight": 0,
            "headers": True}
        assert post({"rate_per_minute": 30, "burst": None,
                     "headers": False}) == {
            "rate_per_minute": 30, "burst": 30, "max_in_flight": 0,
            "headers": False}
        assert post({"max_in_flight": 7}) == dict(NO_LIMITS,
                                                   max_in_flight=7)
        assert post(NO_LIMITS) == NO_LIMITS     # what GET says goes back
        for bad, key in (({"rate": 5}, "rate"),
                         ({"rate_per_minute": -1}, "rate_per_minute"),
                         ({"rate_per_minute": 1.5}, "rate_per_minute"),
                         ({"rate_per_minute": True}, "rate_per_minute"),
                         ({"rate_per_minute": None}, "rate_per_minute"),
                         ({"rate_per_minute": 5, "burst": 0}, "burst"),
                         ({"burst": 3}, "burst"),
                         ({"rate_per_minute": 5, "burst": "2"}, "burst"),
                         ({"max_in_flight": -2}, "max_in_flight"),
                         ({"headers": "no"}, "headers")):
            env = post(bad, expect=422)
            assert env["error"]["type"] == "ValidationError"
            assert key in env["error"]["message"], (bad, env)
            assert env["error"]["details"]["validation_errors"][0][
                "location"] == ["body", key]
        post([1], expect=422)
        c.json("POST", "/_test/limits", b"", auth=False, expect=422)
        # a refused POST changed nothing
        assert c.json("GET", "/_test/limits", auth=False) == NO_LIMITS
        # reset keeps the limits unless asked; limits=true: the CLI's
        post({"rate_per_minute": 600})
        c.json("POST", "/_test/reset", {"faults": True}, auth=False)
        assert c.json("GET", "/_test/limits",
                      auth=False)["rate_per_minute"] == 600
        c.json("POST", "/_test/reset", {"limits": True}, auth=False)
        assert c.json("GET", "/_test/limits", auth=False) == start_cfg
        # and its buckets are full again
        post({"rate_per_minute": 6, "burst": 1})
        assert c.req("GET", "/v1/tasks/nope")[0] == 404
        assert c.req("GET", "/v1/tasks/nope")[0] == 429
        c.json("POST", "/_test/reset", {"limits": True}, auth=False)
        assert [c.req("GET", "/v1/tasks/nope")[0] for _ in range(3)] == \
            [404, 404, 429]


def test_limits_never_on_test_endpoints():
    with limited(rate_per_minute=6, burst=1, max_in_flight=1) as c:
        c.list(limit=1)
        assert c.req("POST", "/v1/tasks/list")[0] == 429
        for _ in range(10):
            for path in ("/_test/stats", "/_test/log", "/_test/faults",
                         "/_test/limits"):
                assert c.req("GET", path, auth=False)[0] == 200
        c.json("PUT", "/_test/tasks", {"task_id": "t_new"}, auth=False,
               expect=201)
        # a held API request does not hold back test endpoints either
        c.faults(hang=True)
        c.json("POST", "/_test/limits", {"max_in_flight": 1}, auth=False)
        threading.Thread(target=_quiet_req, args=(c, "/v1/tasks/x"),
                         daemon=True).start()
        deadline = time.monotonic() + 5
        while len(limited_marks(c)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert c.json("GET", "/_test/dataset", auth=False)
        assert limited_marks(c) == [None, "rate", None]
        assert c.json("GET", "/_test/stats", auth=False)["requests"][
            "total"] == 3


def test_limits_state_arguments():
    for bad in ({"rate_per_minute": -1}, {"burst": 2},
                {"rate_per_minute": 10, "burst": 0},
                {"max_in_flight": -1}, {"ratelimit_headers": 1},
                {"rate_per_minute": 2.5}):
        with pytest.raises(ValueError):
            mixpeek_server.State(count=1, **bad)
    st = mixpeek_server.State(count=1, rate_per_minute=10)
    assert st.get_limits() == {"rate_per_minute": 10, "burst": 10,
                               "max_in_flight": 0, "headers": True}


# --------------------------------------------------------------- the CLI

SCRIPT = os.path.join(HERE, "mixpeek_server.py")


@contextlib.contextmanager
def cli_server(tmp_path, *args, env=None):
    """The server run by its CLI: yields (proc, port) once it listens
    (and has written its port file); killed at the end if still up."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "--port-file", str(port_file)] + list(args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, (line, line or proc.stderr.read())
        port = int(m.group(1))
        assert port_file.read_text() == "%d\n" % port
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli(tmp_path):
    env = dict(os.environ, MIXPEEK_SERVER_KEY="sk_other_key")
    with cli_server(tmp_path, "--count", "30", "--seed", "2",
                    "--no-timestamps", "--latency-ms", "1",
                    env=env) as (proc, port):
        c = Client(port)
        c.json("POST", "/v1/tasks/list", expect=401)
        status, _, data = c.req("POST", "/v1/tasks/list",
                                headers={"Authorization":
                                         "Bearer sk_other_key"})
        assert status == 200
        res = json.loads(data)["results"]
        assert len(res) == 30 and all("created_at" not in t for t in res)
        # without timestamps the default order is task_id order
        assert [t["task_id"] for t in res] == \
            sorted(t["task_id"] for t in res)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr.read() == ""

def test_cli_limits(tmp_path):
    for bad in (["--rate-per-minute", "-1"], ["--burst", "3"],
                ["--rate-per-minute", "0", "--burst", "1"],
                ["--rate-per-minute", "10", "--burst", "0"],
                ["--max-in-flight", "-1"], ["--rate-per-minute", "ten"],
                ["--max-in-flight", "1.5"]):
        r = subprocess.run([sys.executable, SCRIPT, "--count", "1"] + bad,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and bad[-2] in r.stderr, (bad, r.stderr)
    with cli_server(tmp_path, "--count", "5", "--rate-per-minute", "60",
                    "--burst", "2", "--max-in-flight", "3",
                    "--no-ratelimit-headers") as (proc, port):
        c = Client(port)
        cfg = {"rate_per_minute": 60, "burst": 2, "max_in_flight": 3,
               "headers": False}
        assert c.json("GET", "/_test/limits", auth=False) == cfg
        got = [c.req("POST", "/v1/tasks/list?limit=1") for _ in range(3)]
        assert [g[0] for g in got] == [200, 200, 429]
        assert got[2][1].getheader("Retry-After") == "1"
        assert all(set(rl(g[1]).values()) == {None} for g in got)
        assert c.json("POST", "/_test/limits", {}, auth=False) == NO_LIMITS
        c.json("POST", "/_test/reset", {"limits": True}, auth=False)
        assert c.json("GET", "/_test/limits", auth=False) == cfg
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr.read() == ""


# ------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    return {"localhost": mixpeek_server.make_cert(d),
            "other": mixpeek_server.make_cert(d, "other.example",
                                              "DNS:other.example")}


def client_context(cafile, newest=None):
    """A verifying client context; newest="1.1" allows TLS 1.0-1.1 only."""
    ctx = ssl.create_default_context(cafile=cafile)
    if newest == "1.1":
        mixpeek_server.allow_old_tls(ctx)
    return ctx


def tls_version(port, ctx, name="localhost"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as conn:
            return conn.version()


def test_tls(certs):
    cert, key = certs["localhost"]
    srv, _ = start(count=20, seed=1, tls_cert=cert, tls_key=key)
    try:
        port = srv.server_address[1]
        c = Client(port, tls=client_context(cert))
        assert len(c.list()["results"]) == 20
        assert c.json("GET", "/_test/stats", auth=False)["requests"][
            "total"] == 1
        # plain http gets no answer
        with pytest.raises((http.client.HTTPException, OSError)):
            Client(port).req("GET", "/_test/stats", auth=False)
        # the certificate is for localhost and 127.0.0.1, not other names
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_version(port, client_context(cert), "other.example")
        # nothing is capped: a TLS 1.3 client gets 1.3
        assert tls_version(port, client_context(cert)) == "TLSv1.3"
        # a client that never handshakes blocks nobody
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            assert len(c.list(limit=3)["results"]) == 3
    finally:
        srv.stop()


@pytest.mark.parametrize("tls_max", ["1.1", "1.2"])
def test_tls_max(certs, tls_max):
    cert, key = certs["localhost"]
    srv, _ = start(count=5, seed=1, tls_cert=cert, tls_key=key,
                   tls_max=tls_max)
    try:
        port = srv.server_address[1]
        if tls_max == "1.1":
            # a client that wants TLS 1.2 or newer is turned away ...
            modern = client_context(cert)
            modern.minimum_version = ssl.TLSVersion.TLSv1_2
            with pytest.raises(ssl.SSLError):
                tls_version(port, modern)
            # ... and one that allows 1.1 really gets it
            old = client_context(cert, newest="1.1")
            assert tls_version(port, old) == "TLSv1.1"
            assert len(Client(port, tls=old).list()["results"]) == 5
        else:
            assert tls_version(port, client_context(cert)) == "TLSv1.2"
    finally:
        srv.stop()


def test_tls_other_name(certs):
    cert, key = certs["other"]
    srv, _ = start(count=5, seed=1, tls_cert=cert, tls_key=key)
    try:
        port = srv.server_address[1]
        with pytest.raises(ssl.SSLCertVerificationError) as exc:
            tls_version(port, client_context(cert))
        assert "match" in str(exc.value).lower(), exc.value
        assert tls_version(port, client_context(cert),
                           "other.example").startswith("TLSv1.")
    finally:
        srv.stop()


def test_cli_tls(tmp_path, certs):
    cert, key = certs["localhost"]
    for bad in (["--tls-cert", cert], ["--tls-key", key],
                ["--tls-max", "1.2"],
                ["--tls-cert", cert, "--tls-key", key, "--tls-max", "1.0"]):
        r = subprocess.run([sys.executable, SCRIPT, "--count", "1"] + bad,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "tls" in r.stderr, (bad, r.stderr)
    with cli_server(tmp_path, "--count", "7", "--tls-cert", cert,
                    "--tls-key", key, "--tls-max", "1.2") as (proc, port):
        c = Client(port, tls=client_context(cert))
        assert len(c.list()["results"]) == 7
        assert tls_version(port, client_context(cert)) == "TLSv1.2"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_expired_ids(c):
    cfg = c.json("GET", "/_test/faults", auth=False)
    assert cfg["expired_ids"] is None
    tid = DATA[0]["task_id"]
    assert c.faults(expired_ids=[tid])["expired_ids"] == [tid]
    env = c.json("GET", "/v1/tasks/" + tid, expect=404)
    assert env["error"]["type"] == "NotFoundError"
    # the list still has it, as it was
    assert tid in c.list_all()
    got = [t for t in c.list(limit=1000)["results"] if t["task_id"] == tid]
    assert got == [DATA[0]]
    assert c.json("GET", "/v1/tasks/" + DATA[1]["task_id"]) == DATA[1]
    env = c.json("POST", "/_test/faults", {"expired_ids": "x"},
                 auth=False, expect=422)
    assert "expired_ids" in env["error"]["message"]
    c.faults()
    assert c.json("GET", "/v1/tasks/" + tid) == DATA[0]


def test_published_shape_by_default():
    """Without --extra-keys, every task has exactly the seven keys of the
    published schema, in its order, whatever the data set's options."""
    for kw in ({}, {"weird": True}, {"timestamps": False}):
        srv, c = start(count=200, seed=3, extra_keys=False, **kw)
        try:
            tasks = c.json("GET", "/_test/dataset", auth=False)
            tasks = tasks.get("tasks", tasks) if isinstance(tasks, dict) \
                else tasks
            assert tasks and all(list(t) == list(dataset.PUBLISHED_KEYS)
                                 for t in tasks), tasks[0]
            page = c.list(limit=50)["results"]
            assert all(list(t) == list(dataset.PUBLISHED_KEYS)
                       for t in page)
            one = c.json("GET", "/v1/tasks/" + page[0]["task_id"])
            assert list(one) == list(dataset.PUBLISHED_KEYS)
        finally:
            srv.stop()


def test_move_after_first_page(fresh):
    c = fresh
    body = {"status": "COMPLETED"}
    first = c.list(limit=50, include_total="true", body=body)
    ids = [t["task_id"] for t in first["results"]]
    total = first["pagination"]["total"]
    c.faults(move_after_first_page={"status": "COMPLETED", "to": "FAILED",
                                    "count": 10})
    again = c.list(limit=50, include_total="true", body=body)
    # the answer is the state before the move; the move follows it
    assert [t["task_id"] for t in again["results"]] == ids
    after = c.list(limit=50, include_total="true", body=body)
    assert after["pagination"]["total"] == total - 10
    assert [t["task_id"] for t in after["results"]][:40] == ids[10:]
    for tid in ids[:10]:
        assert c.json("GET", "/v1/tasks/" + tid)["status"] == "FAILED"
    # once: the fault cleared itself
    assert c.json("GET", "/_test/faults", auth=False)[
        "move_after_first_page"] is None
    assert c.list(limit=50, include_total="true",
                  body=body)["pagination"]["total"] == total - 10
    env = c.json("POST", "/_test/faults", {"move_after_first_page": {
        "status": "X"}}, auth=False, expect=422)
    assert "move_after_first_page" in env["error"]["message"]


@pytest.mark.parametrize("params,body,where", [
    ({"limit": "0"}, None, ["query", "limit"]),
    ({"offset": "10001"}, None, ["query", "offset"]),
    ({"include_total": "maybe"}, None, ["query", "include_total"]),
    ({}, {"sort": {"direction": "desc"}}, ["body", "sort", "field"]),
    ({}, {"search": 5}, ["body", "search"]),
    ({}, {"filters": {"case_sensitive": "yes"}},
     ["body", "filters", "case_sensitive"]),
    ({}, {"filters": {"AND": {"field": "status"}}},
     ["body", "filters", "AND"]),
    ({}, {"filters": {"AND": [{"field": "status", "operator": "eq"}]}},
     ["body", "filters", "AND", 0]),
])
def test_published_schema_refusals(c, params, body, where):
    """What the published request schema does not allow is 422, whichever
    check finds it first (ours, or schema.py's, written from the
    schema)."""
    env = c.list(body, expect=422, **params)
    errs = env["error"]["details"]["validation_errors"]
    assert errs[0]["location"][:len(where)] == where or \
        errs[0]["location"][:2] == where[:2], errs


def test_schema_module_against_the_document():
    """schema.py reads the published document beside it."""
    assert schema.SPEC["info"]["version"] == "0.81"
    assert schema.check("post", "/v1/tasks/list",
                        {"limit": "1000", "include_total": "true"},
                        {"status": "FAILED", "sort": {"field": "task_id"},
                         "filters": {"OR": [{"field": "a", "operator":
                                             "in", "value": [1, "b"]}]}}
                        ) is None
    where, why = schema.check("post", "/v1/tasks/list", {},
                              {"task_type": "THUMBNAIL"})
    assert where == ["body", "task_type"] and "one of" in why
