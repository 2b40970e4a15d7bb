"""Query folders: a listing folder refined by folder names.

Under any listing folder (tasks/, by-status/S/, by-type/T/ and any query
folder) a sub-folder named like ``FIELD=VALUE``, ``FIELD!=VALUE``,
``FIELD:OP:VALUE``, ``not:COND``, ``A|B|C``, ``@search=``, ``@sort=``,
``@limit=`` or ``@case=sensitive`` is the same listing refined by it.

Every listing is compared, name by name and in order (``ls -U``), with a
list computed here from ``main_tasks`` by a small evaluator of the list
endpoint's filter semantics (as the test server's docstring describes
them; the server's own filter code is not used). Without @sort the order
is the server's default order, i.e. ``main_tasks`` order filtered.
"""

import errno
import os
import re
import shlex

import pytest

import mfs

PAGE = 100

# ---------------------------------------------------------------------------
# A small evaluator of the list endpoint's filters over plain task dicts.

MISSING = object()


def get(task, path):
    """The value at a dotted path (through objects only), or MISSING."""
    cur = task
    for seg in path.split("."):
        if not isinstance(cur, dict) or seg not in cur:
            return MISSING
        cur = cur[seg]
    return cur


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fold(v, cs):
    return v if cs or not isinstance(v, str) else v.lower()


def _elems(v):
    """The value itself and, for an array, each element ("any element")."""
    if isinstance(v, list):
        return [v] + list(v)
    return [v]


def _same(a, b):
    """Typed equality of scalars: 1 == 1.0, "1" != 1, true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _num(a) and _num(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    return False


def eq(t, field, value, cs=False):
    fv = get(t, field)
    if fv is MISSING:
        return value is None
    return any(_same(_fold(e, cs), _fold(value, cs)) for e in _elems(fv))


def ne(t, field, value, cs=False):
    return not eq(t, field, value, cs)


def is_in(t, field, values, cs=False):
    return any(eq(t, field, v, cs) for v in values)


def nin(t, field, values, cs=False):
    return not is_in(t, field, values, cs)


def cmp(t, field, op, value, cs=False):
    fv = get(t, field)
    if fv is MISSING:
        return False
    v = _fold(value, cs)
    for e in _elems(fv):
        e = _fold(e, cs)
        if not ((_num(e) and _num(v)) or
                (isinstance(e, str) and isinstance(v, str))):
            continue
        if {"gt": e > v, "gte": e >= v, "lt": e < v, "lte": e <= v}[op]:
            return True
    return False


def contains(t, field, s, cs=False):
    fv = get(t, field)
    if fv is MISSING:
        return False
    s = _fold(s, cs)
    return any(isinstance(e, str) and s in _fold(e, cs) for e in _elems(fv))


def starts_with(t, field, s, cs=False):
    fv = get(t, field)
    if fv is MISSING:
        return False
    s = _fold(s, cs)
    return any(isinstance(e, str) and _fold(e, cs).startswith(s)
               for e in _elems(fv))


def ends_with(t, field, s, cs=False):
    fv = get(t, field)
    if fv is MISSING:
        return False
    s = _fold(s, cs)
    return any(isinstance(e, str) and _fold(e, cs).endswith(s)
               for e in _elems(fv))


def regex(t, field, pattern, cs=False):
    fv = get(t, field)
    if fv is MISSING:
        return False
    rx = re.compile(pattern, 0 if cs else re.IGNORECASE)
    return any(isinstance(e, str) and rx.search(e) for e in _elems(fv))


def exists(t, field):
    return get(t, field) is not MISSING


def is_null(t, field):
    v = get(t, field)
    return v is MISSING or v is None


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for e in v:
            yield from _strings(e)
    elif isinstance(v, dict):
        for e in v.values():
            yield from _strings(e)


def text(t, field, words):
    fv = get(t, field)
    if fv is MISSING:
        return False
    strs = [s.lower() for s in _strings(fv)]
    return bool(strs) and all(any(w.lower() in s for s in strs)
                              for w in words.split())


def search(t, needle):
    needle = needle.lower()
    for key in ("task_id", "task_type", "status", "description"):
        v = t.get(key)
        if isinstance(v, str) and needle in v.lower():
            return True
    return any(needle in s.lower()
               for s in _strings(t.get("additional_data")))


def sort_tasks(tasks, field, desc):
    """Present values by value (ties by task_id), then missing/null ones."""
    by_id = sorted(tasks, key=lambda t: t["task_id"])
    present = [t for t in by_id if not is_null(t, field)]
    absent = [t for t in by_id if is_null(t, field)]

    def key(t):
        v = get(t, field)
        assert _num(v) or isinstance(v, str), (field, v)
        return (0, v) if _num(v) else (1, v)
    # sorted() is stable with reverse=True too: ties stay in task_id order.
    return sorted(present, key=key, reverse=desc) + absent


# ---------------------------------------------------------------------------
# Cases

SOME = "some"      # at least one match and at least one non-match
NONE = "none"      # nothing matches (deliberately)
ALL = "all"        # every task of the base matches (deliberately)


class Case(object):
    def __init__(self, path, pred, sort=None, limit=None, expect=SOME):
        self.path = path
        self.pred = pred
        self.sort = sort          # (field, desc) or None
        self.limit = limit
        self.expect = expect

    def expected(self, tasks):
        out = [t for t in tasks if self.pred(t)]
        if self.sort:
            out = sort_tasks(out, *self.sort)
        if self.limit is not None:
            out = out[:self.limit]
        return out


def st(s):
    return lambda t: t["status"] == s


def ty(s):
    return lambda t: t["task_type"] == s


def both(*preds):
    return lambda t: all(p(t) for p in preds)


AD = "additional_data."

# Data-dependent picks (from main_tasks, never from the filesystem).


def _failed_desc_with_slash_and_space(tasks):
    for t in tasks:
        d = t["description"]
        if t["status"] == "FAILED" and "/" in d and " " in d:
            return d
    raise AssertionError("no FAILED description with '/' and ' '")


def _common_object_count(tasks):
    counts = {}
    for t in tasks:
        v = t["additional_data"]["object_count"]
        counts[v] = counts.get(v, 0) + 1
    return max(sorted(counts), key=lambda v: counts[v])


def _nonzero_progress(tasks):
    counts = {}
    for t in tasks:
        v = t["additional_data"].get("progress")
        if isinstance(v, float) and 0 < v < 1:
            counts[v] = counts.get(v, 0) + 1
    return max(sorted(counts), key=lambda v: counts[v])


def _a_collection_id(tasks):
    for t in tasks[100:]:
        ids = t["additional_data"]["collection_ids"]
        if ids:
            return ids[0]
    raise AssertionError("no collection ids")


def _id_fragment(tasks):
    tid = [t["task_id"] for t in tasks if t["task_id"].startswith("task_")][5]
    return tid[5:11]


def _escape_value(s):
    """Percent-escape a value for a component name ('%', '/', '|', ',')."""
    return (s.replace("%", "%25").replace("/", "%2F").replace("|", "%7C")
            .replace(",", "%2C").replace(" ", "%20"))


def picks(tasks):
    """Values some cases need, picked from the data set."""
    return {"oc": _common_object_count(tasks),
            "prog": _nonzero_progress(tasks),
            "col": _a_collection_id(tasks),
            "frag": _id_fragment(tasks),
            "slash_desc": _failed_desc_with_slash_and_space(tasks)}


def _cases():
    """name -> Case, or a function of picks() returning the Case."""
    c = {}

    # --- eq (FIELD=VALUE and FIELD:eq:VALUE) -----------------------------
    c["eq-two-levels"] = Case(
        "tasks/status=FAILED/task_type=thumbnail",
        both(st("FAILED"), ty("thumbnail")))
    c["eq-case-insensitive"] = Case(
        "tasks/status=failed", lambda t: eq(t, "status", "failed"))
    c["eq-op-form"] = Case(
        "tasks/additional_data.bucket_id:eq:bkt_media",
        lambda t: eq(t, AD + "bucket_id", "bkt_media"))
    c["eq-int"] = Case(
        "tasks/additional_data.total_tiers=2",
        lambda t: eq(t, AD + "total_tiers", 2))
    c["eq-null-matches-null-or-missing"] = Case(
        "tasks/additional_data.current_tier=null",
        lambda t: eq(t, AD + "current_tier", None))
    c["eq-zero-matches-0.0"] = Case(
        "tasks/additional_data.progress=0",
        lambda t: eq(t, AD + "progress", 0))
    c["eq-decimal"] = lambda p: Case(
        "tasks/additional_data.progress=%r" % p["prog"],
        lambda t: eq(t, AD + "progress", p["prog"]))
    c["eq-quoted-string-same-as-plain"] = Case(
        'tasks/status="FAILED"', lambda t: eq(t, "status", "FAILED"))
    # --- typed values: a number and the same digits quoted --------------
    c["typed-number"] = lambda p: Case(
        "tasks/additional_data.object_count=%d" % p["oc"],
        lambda t: eq(t, AD + "object_count", p["oc"]))
    # The server compares types strictly ("1" != 1): the string matches
    # nothing.
    c["typed-quoted-number-is-a-string"] = lambda p: Case(
        'tasks/additional_data.object_count="%d"' % p["oc"],
        lambda t: eq(t, AD + "object_count", str(p["oc"])), expect=NONE)
    c["typed-quoted-null-is-a-string"] = Case(
        'tasks/additional_data.current_tier="null"',
        lambda t: eq(t, AD + "current_tier", "null"), expect=NONE)
    c["typed-in-mixed"] = Case(
        'tasks/additional_data.total_tiers:in:"2",3',
        lambda t: is_in(t, AD + "total_tiers", ["2", 3]))
    # --- ne ---------------------------------------------------------------
    c["ne"] = Case("tasks/status!=COMPLETED",
                   lambda t: ne(t, "status", "COMPLETED"))
    c["ne-op-form"] = Case(
        "tasks/additional_data.bucket_id:ne:BKT_DOCS",
        lambda t: ne(t, AD + "bucket_id", "BKT_DOCS"))
    c["ne-null"] = Case(
        "tasks/additional_data.current_tier!=null",
        lambda t: ne(t, AD + "current_tier", None))
    # --- gt gte lt lte ----------------------------------------------------
    c["gt-string-date"] = Case(
        "tasks/created_at:gt:2026-11-20T00:00:00Z",
        lambda t: cmp(t, "created_at", "gt", "2026-11-20T00:00:00Z"))
    c["gte-int"] = Case(
        "tasks/additional_data.object_count:gte:1000",
        lambda t: cmp(t, AD + "object_count", "gte", 1000))
    c["gte-boundary"] = lambda p: Case(
        "tasks/additional_data.object_count:gte:%d" % p["oc"],
        lambda t: cmp(t, AD + "object_count", "gte", p["oc"]))
    c["lt-decimal-missing-never-matches"] = Case(
        "tasks/additional_data.progress:lt:0.5",
        lambda t: cmp(t, AD + "progress", "lt", 0.5))
    c["lte-null-never-matches"] = Case(
        "tasks/additional_data.current_tier:lte:1",
        lambda t: cmp(t, AD + "current_tier", "lte", 1))
    # --- in nin -----------------------------------------------------------
    c["in"] = Case(
        "tasks/status:in:FAILED,CANCELED,suspended",
        lambda t: is_in(t, "status", ["FAILED", "CANCELED", "suspended"]))
    c["in-numbers"] = Case(
        "tasks/additional_data.total_tiers:in:1,4",
        lambda t: is_in(t, AD + "total_tiers", [1, 4]))
    c["nin"] = Case(
        "tasks/additional_data.bucket_id:nin:bkt_products,bkt_media",
        lambda t: nin(t, AD + "bucket_id", ["bkt_products", "bkt_media"]))
    # --- contains starts_with ends_with regex text ------------------------
    c["contains-string"] = Case(
        "tasks/description:contains:timeout after",
        lambda t: contains(t, "description", "timeout after"))
    c["contains-digits-stay-a-string"] = Case(
        "tasks/description:contains:502",
        lambda t: contains(t, "description", "502"))
    c["contains-array-element"] = lambda p: Case(
        "tasks/additional_data.collection_ids:contains:%s" % p["col"],
        lambda t: contains(t, AD + "collection_ids", p["col"]))
    c["contains-array-substring"] = Case(
        "tasks/additional_data.collection_ids:contains:COL_A",
        lambda t: contains(t, AD + "collection_ids", "COL_A"))
    c["starts_with"] = Case(
        "tasks/description:starts_with:segment",
        lambda t: starts_with(t, "description", "segment"))
    c["ends_with"] = Case(
        "tasks/description:ends_with:by speaker",
        lambda t: ends_with(t, "description", "by speaker"))
    c["ends_with-array"] = Case(
        "tasks/additional_data.sample_object_ids:ends_with:7",
        lambda t: ends_with(t, AD + "sample_object_ids", "7"))
    c["regex"] = Case(
        "tasks/task_id:regex:^[0-9a-f]{8}-",
        lambda t: regex(t, "task_id", "^[0-9a-f]{8}-"))
    c["regex-ignorecase"] = Case(
        "tasks/description:regex:^ray ",
        lambda t: regex(t, "description", "^ray "))
    c["text"] = Case(
        "tasks/description:text:GPU timeout",
        lambda t: text(t, "description", "GPU timeout"))
    c["text-under-object"] = Case(
        "tasks/additional_data:text:bkt_media ns_acme",
        lambda t: text(t, "additional_data", "bkt_media ns_acme"))
    # --- exists is_null ---------------------------------------------------
    c["exists-true"] = Case(
        "tasks/additional_data.progress:exists:true",
        lambda t: exists(t, AD + "progress"))
    c["exists-false"] = Case(
        "tasks/additional_data.notes:exists:false",
        lambda t: not exists(t, AD + "notes"))
    c["exists-null-counts"] = Case(
        "tasks/additional_data.current_tier:exists:true",
        lambda t: exists(t, AD + "current_tier"), expect=ALL)
    c["is_null-true"] = Case(
        "tasks/additional_data.current_tier:is_null:true",
        lambda t: is_null(t, AD + "current_tier"))
    c["is_null-missing-counts"] = Case(
        "tasks/additional_data.progress:is_null:true",
        lambda t: is_null(t, AD + "progress"))
    c["is_null-false"] = Case(
        "tasks/additional_data.batch_id:is_null:false",
        lambda t: not is_null(t, AD + "batch_id"))
    # --- not: and OR groups -----------------------------------------------
    c["not"] = Case("tasks/not:status=COMPLETED",
                    lambda t: not eq(t, "status", "COMPLETED"))
    c["not-exists"] = Case(
        "tasks/not:additional_data.progress:exists:true",
        lambda t: not exists(t, AD + "progress"))
    c["not-lt-includes-missing"] = Case(
        "tasks/not:additional_data.progress:lt:0.5",
        lambda t: not cmp(t, AD + "progress", "lt", 0.5))
    c["two-nots"] = Case(
        "tasks/not:status=COMPLETED/not:status=FAILED",
        lambda t: not eq(t, "status", "COMPLETED") and
        not eq(t, "status", "FAILED"))
    c["or"] = Case(
        "tasks/status=FAILED|additional_data.object_count:gt:4000",
        lambda t: eq(t, "status", "FAILED") or
        cmp(t, AD + "object_count", "gt", 4000))
    c["or-three"] = Case(
        "tasks/task_type=thumbnail|task_type=video_segment|"
        "task_type=audio_segment",
        lambda t: t["task_type"] in ("thumbnail", "video_segment",
                                     "audio_segment"))
    c["two-or-groups-stay-apart"] = Case(
        "tasks/status=FAILED|status=CANCELED/"
        "additional_data.bucket_id=bkt_docs|additional_data.bucket_id="
        "bkt_media",
        lambda t: t["status"] in ("FAILED", "CANCELED") and
        t["additional_data"]["bucket_id"] in ("bkt_docs", "bkt_media"))
    c["or-not-and"] = Case(
        "tasks/task_type=thumbnail|task_type=video_segment/"
        "not:status=COMPLETED/additional_data.bucket_id:in:bkt_media,"
        "bkt_products",
        lambda t: t["task_type"] in ("thumbnail", "video_segment") and
        t["status"] != "COMPLETED" and
        t["additional_data"]["bucket_id"] in ("bkt_media", "bkt_products"))
    c["issue-gte-not-in"] = Case(
        "tasks/additional_data.object_count:gte:1000/"
        "not:status:in:COMPLETED,CANCELED",
        lambda t: cmp(t, AD + "object_count", "gte", 1000) and
        not is_in(t, "status", ["COMPLETED", "CANCELED"]))
    # --- @search ----------------------------------------------------------
    c["search"] = Case("tasks/@search=oom", lambda t: search(t, "oom"))
    c["search-additional-data-case"] = Case(
        "tasks/@search=BKT_SUPPORT", lambda t: search(t, "BKT_SUPPORT"))
    c["search-task-id"] = lambda p: Case(
        "tasks/@search=%s" % p["frag"], lambda t: search(t, p["frag"]))
    c["search-unicode-notes"] = Case(
        "tasks/@search=東京", lambda t: search(t, "東京"))
    c["search-and-filter"] = Case(
        "tasks/@search=thumbnail/status=FAILED",
        lambda t: search(t, "thumbnail") and t["status"] == "FAILED")
    # --- percent-escapes --------------------------------------------------
    c["pct-search-slash"] = Case(
        "tasks/@search=application%2Fx-msdownload",
        lambda t: search(t, "application/x-msdownload"))
    c["pct-search-space"] = Case(
        "tasks/@search=permission%20denied",
        lambda t: search(t, "permission denied"))
    c["pct-eq-slash-space"] = lambda p: Case(
        "tasks/description=" + _escape_value(p["slash_desc"]),
        lambda t: eq(t, "description", p["slash_desc"]))
    c["pct-bar-in-regex"] = Case(
        "tasks/description:regex:^Worker%7C^Checksum",
        lambda t: regex(t, "description", "^Worker|^Checksum"))
    c["pct-comma-space-in-regex"] = Case(
        "tasks/description:regex:^[A-Z][a-z]{2%2C5}%20[a-z]",
        lambda t: regex(t, "description", "^[A-Z][a-z]{2,5} [a-z]"))
    c["pct-comma-in-in-value"] = Case(
        "tasks/status:in:FAILED%2CCANCELED",
        lambda t: is_in(t, "status", ["FAILED,CANCELED"]), expect=NONE)
    c["pct-slash-in-notes"] = Case(
        "tasks/additional_data.notes:contains:Schritt%203%2F4",
        lambda t: contains(t, AD + "notes", "Schritt 3/4"))
    c["pct-letter"] = Case(
        "tasks/status=F%41ILED", lambda t: eq(t, "status", "FAILED"))
    c["pct-percent"] = Case(
        "tasks/description:contains:%25",
        lambda t: contains(t, "description", "%"), expect=NONE)
    # --- @case=sensitive --------------------------------------------------
    c["case-sensitive-eq"] = Case(
        "tasks/@case=sensitive/status=failed",
        lambda t: eq(t, "status", "failed", cs=True), expect=NONE)
    c["case-sensitive-contains"] = Case(
        "tasks/@case=sensitive/description:contains:Worker",
        lambda t: contains(t, "description", "Worker", cs=True))
    c["case-sensitive-regex"] = Case(
        "tasks/description:regex:^RAY%20%7C^Ray%20job/@case=sensitive",
        lambda t: regex(t, "description", "^RAY |^Ray job", cs=True))
    c["case-sensitive-in"] = Case(
        "tasks/additional_data.bucket_id:in:BKT_MEDIA,bkt_docs/"
        "@case=sensitive",
        lambda t: is_in(t, AD + "bucket_id", ["BKT_MEDIA", "bkt_docs"],
                        cs=True))
    # --- @sort (ls -U shows the order) ------------------------------------
    c["sort-created-asc"] = Case(
        "tasks/@sort=created_at", lambda t: True,
        sort=("created_at", False), expect=ALL)
    c["sort-created-desc"] = Case(
        "tasks/@sort=-created_at", lambda t: True,
        sort=("created_at", True), expect=ALL)
    c["sort-int-asc-ties-by-id"] = Case(
        "tasks/@sort=additional_data.total_tiers", lambda t: True,
        sort=(AD + "total_tiers", False), expect=ALL)
    c["sort-int-desc-ties-by-id"] = Case(
        "tasks/@sort=-additional_data.object_count", lambda t: True,
        sort=(AD + "object_count", True), expect=ALL)
    c["sort-missing-last-desc"] = Case(
        "tasks/@sort=-additional_data.progress", lambda t: True,
        sort=(AD + "progress", True), expect=ALL)
    c["sort-null-last-asc"] = Case(
        "tasks/@sort=additional_data.current_tier", lambda t: True,
        sort=(AD + "current_tier", False), expect=ALL)
    c["sort-filtered"] = Case(
        "tasks/status=IN_PROGRESS/@sort=-additional_data.progress",
        lambda t: t["status"] == "IN_PROGRESS",
        sort=(AD + "progress", True))
    c["sort-string-asc"] = Case(
        "tasks/additional_data.object_count:lt:300/@sort=description",
        lambda t: cmp(t, AD + "object_count", "lt", 300),
        sort=("description", False))
    # --- @limit -----------------------------------------------------------
    c["limit"] = Case("tasks/@limit=7", lambda t: True, limit=7,
                      expect=ALL)
    c["limit-sort-desc"] = Case(
        "tasks/@sort=-created_at/@limit=20", lambda t: True,
        sort=("created_at", True), limit=20, expect=ALL)
    c["limit-before-sort"] = Case(
        "tasks/@limit=30/@sort=additional_data.object_count",
        lambda t: True, sort=(AD + "object_count", False), limit=30,
        expect=ALL)
    c["limit-filtered"] = Case(
        "tasks/status=FAILED/@limit=5", lambda t: t["status"] == "FAILED",
        limit=5)
    c["limit-above-page-size"] = Case(
        "tasks/@limit=250", lambda t: True, limit=250, expect=ALL)
    c["limit-above-matches"] = Case(
        "tasks/task_type=thumbnail/status=FAILED/@limit=900",
        both(st("FAILED"), ty("thumbnail")), limit=900)
    # --- on top of a status folder and a type folder ---------------------
    c["status-folder-eq"] = Case(
        "by-status/FAILED/additional_data.bucket_id=bkt_products",
        both(st("FAILED"),
             lambda t: eq(t, AD + "bucket_id", "bkt_products")))
    c["status-folder-contains"] = Case(
        "by-status/FAILED/description:contains:OOM",
        both(st("FAILED"), lambda t: contains(t, "description", "OOM")))
    c["status-folder-two-levels"] = Case(
        "by-status/COMPLETED/additional_data.object_count:gt:3000/"
        "not:task_type=thumbnail",
        both(st("COMPLETED"),
             lambda t: cmp(t, AD + "object_count", "gt", 3000),
             lambda t: not eq(t, "task_type", "thumbnail")))
    c["status-folder-sort"] = Case(
        "by-status/FAILED/@sort=-additional_data.object_count",
        st("FAILED"), sort=(AD + "object_count", True), expect=ALL)
    c["status-folder-search-limit"] = Case(
        "by-status/FAILED/@search=timeout/@limit=9",
        both(st("FAILED"), lambda t: search(t, "timeout")), limit=9)
    c["type-folder-two-levels"] = Case(
        "by-type/thumbnail/additional_data.bucket_id=bkt_media/"
        "status!=COMPLETED",
        both(ty("thumbnail"),
             lambda t: eq(t, AD + "bucket_id", "bkt_media"),
             lambda t: ne(t, "status", "COMPLETED")))
    c["type-folder-exists-or"] = Case(
        "by-type/engine_feature_extractor_run/"
        "additional_data.progress:exists:true|status=FAILED",
        both(ty("engine_feature_extractor_run"),
             lambda t: exists(t, AD + "progress") or
             t["status"] == "FAILED"))
    c["type-folder-sort-created"] = Case(
        "by-type/api_buckets_batches_process/@sort=created_at",
        ty("api_buckets_batches_process"), sort=("created_at", False),
        expect=ALL)
    return c


CASES = _cases()


def case_for(name, tasks):
    case = CASES[name]
    return case if isinstance(case, Case) else case(picks(tasks))


# ---------------------------------------------------------------------------
# Helpers

def names_of(tasks):
    return [mfs.escape_name(t["task_id"]) for t in tasks]


def ls_u(m, rel):
    """The names ``ls -U`` shows for a folder (relative to the mount)."""
    return mfs.lines(mfs.sh("ls -U -- %s" % shlex.quote(rel), m.path).out)


def diff_text(got, exp):
    gs, es = set(got), set(exp)
    missing = [n for n in exp if n not in gs]
    extra = [n for n in got if n not in es]
    msg = "expected %d entries, got %d" % (len(exp), len(got))
    if missing:
        msg += "; %d missing, e.g. %s" % (len(missing), missing[:5])
    if extra:
        msg += "; %d unexpected, e.g. %s" % (len(extra), extra[:5])
    if len(got) != len(gs):
        dups = sorted(n for n in gs if got.count(n) > 1)
        msg += "; duplicates, e.g. %s" % dups[:5]
    if not missing and not extra and len(got) == len(exp):
        i = next(i for i, (a, b) in enumerate(zip(got, exp)) if a != b)
        msg += "; same names, order differs from index %d: got %s, " \
               "expected %s" % (i, got[i:i + 4], exp[i:i + 4])
    return msg


def check_listing(m, rel, expected_tasks):
    got = ls_u(m, rel)
    exp = names_of(expected_tasks)
    assert got == exp, "%s: %s" % (rel, diff_text(got, exp))


def base_tasks(tasks, rel):
    """The tasks of the folder a query path starts in."""
    parts = rel.split("/")
    if parts[0] == "by-status":
        return [t for t in tasks if t["status"] == parts[1]]
    if parts[0] == "by-type":
        return [t for t in tasks if t["task_type"] == parts[1]]
    assert parts[0] == "tasks", rel
    return tasks


def new_stderr(m, since):
    return m.stderr()[since:]


# ---------------------------------------------------------------------------
# Listings against the evaluator


@pytest.mark.parametrize("name", list(CASES))
def test_listing_matches_evaluator(server, mounter, main_tasks, name):
    case = case_for(name, main_tasks)
    exp = case.expected(main_tasks)
    # The case itself must be useful: it selects what it claims to.
    base = base_tasks(main_tasks, case.path)
    matched = [t for t in base if case.pred(t)]
    if case.expect == SOME:
        assert 0 < len(matched) < len(base), \
            "%s: a weak case (%d of %d match)" % (case.path, len(matched),
                                                  len(base))
    elif case.expect == NONE:
        assert not matched, case.path
    else:
        assert len(matched) == len(base), case.path
    if case.sort is None:
        # Without @sort: the server's default order, filtered.
        pos = {t["task_id"]: i for i, t in enumerate(main_tasks)}
        assert [pos[t["task_id"]] for t in exp] == \
            sorted(pos[t["task_id"]] for t in exp)
    m = mounter(server, page_size=PAGE, ttl=600)
    check_listing(m, case.path, exp)


def test_issue_examples_verbatim(server, mounter, main_tasks):
    m = mounter(server, page_size=PAGE, ttl=600)

    def ls(cmd):
        return mfs.lines(mfs.sh(cmd, m.path).out)

    def sorted_names(pred):
        return sorted(names_of([t for t in main_tasks if pred(t)]),
                      key=lambda s: s.encode())

    got = ls("ls tasks/status=FAILED/task_type=thumbnail/")
    exp = sorted_names(both(st("FAILED"), ty("thumbnail")))
    assert got == exp, diff_text(got, exp)

    got = ls("ls by-status/FAILED/additional_data.bucket_id=bkt_products/")
    exp = sorted_names(lambda t: t["status"] == "FAILED" and
                       t["additional_data"]["bucket_id"] == "bkt_products")
    assert got == exp, diff_text(got, exp)

    got = ls("ls 'tasks/additional_data.object_count:gte:1000/"
             "not:status:in:COMPLETED,CANCELED/'")
    exp = sorted_names(lambda t: t["additional_data"]["object_count"] >= 1000
                       and t["status"] not in ("COMPLETED", "CANCELED"))
    assert got == exp, diff_text(got, exp)

    got = ls("ls -U tasks/@sort=-created_at/@limit=20/")
    exp = names_of(sort_tasks(main_tasks, "created_at", True)[:20])
    assert got == exp, diff_text(got, exp)

    r = mfs.sh("grep -l OOM tasks/@search=oom/*/description", m.path)
    got = mfs.lines(r.out)
    exp = sorted("tasks/@search=oom/%s/description" % mfs.escape_name(
        t["task_id"]) for t in main_tasks
        if search(t, "oom") and "OOM" in t["description"])
    assert len(exp) > 5
    assert sorted(got) == exp, diff_text(sorted(got), exp)


# ---------------------------------------------------------------------------
# Files inside query folders, lookups, readdir


def test_files_inside_query_folder(server, mounter, main_tasks):
    m = mounter(server, page_size=PAGE, ttl=600)
    failed = [t for t in main_tasks if t["status"] == "FAILED"]
    other = next(t for t in main_tasks if t["status"] == "COMPLETED")
    t = failed[3]
    tid = mfs.escape_name(t["task_id"])
    r = mfs.sh("cat tasks/status=FAILED/%s/status" % tid, m.path)
    assert r.out == "FAILED\n"
    r = mfs.sh("cat tasks/status=FAILED/%s/description" % tid, m.path)
    assert r.out == t["description"] + "\n"
    r = mfs.sh("cat 'by-type/%s/not:status=COMPLETED/@search=%s/%s/"
               "additional_data/bucket_id'"
               % (t["task_type"], t["task_id"][-6:], tid), m.path)
    assert r.out == t["additional_data"]["bucket_id"] + "\n"
    assert os.path.isdir(m.p("tasks", "status=FAILED", tid))
    # A task that the query does not select is not there.
    assert mfs.errno_of(os.stat, m.p(
        "tasks", "status=FAILED", mfs.escape_name(other["task_id"]))) == \
        errno.ENOENT
    assert mfs.errno_of(os.stat, m.p(
        "tasks", "status=FAILED", "task_doesnotexist")) == errno.ENOENT
    # Nor a task cut off by @limit.
    assert mfs.errno_of(os.stat, m.p(
        "tasks", "@limit=3", mfs.escape_name(main_tasks[3]["task_id"]))) == \
        errno.ENOENT
    assert os.path.isdir(m.p("tasks", "@limit=3",
                             mfs.escape_name(main_tasks[2]["task_id"])))


def test_readdir_never_lists_components(server, mounter, main_tasks):
    m = mounter(server, page_size=PAGE, ttl=600)
    comps = ["status=FAILED", "task_type=thumbnail",
             "additional_data.object_count:gte:100", "@sort=-created_at",
             "@limit=500", "not:status=COMPLETED", "@search=oom"]
    # Look every component up (as a folder) at several levels first.
    for c in comps:
        assert os.path.isdir(m.p("tasks", c)), c
        assert os.path.isdir(m.p("by-status", "FAILED", c)), c
        assert os.path.isdir(m.p("tasks", "status=FAILED", c)), c
    all_ids = sorted(names_of(main_tasks))
    assert sorted(os.listdir(m.p("tasks"))) == all_ids
    failed = sorted(names_of([t for t in main_tasks
                              if t["status"] == "FAILED"]))
    got = sorted(os.listdir(m.p("tasks", "status=FAILED")))
    assert got == failed, diff_text(got, failed)
    got = sorted(os.listdir(m.p("by-status", "FAILED")))
    assert got == failed, diff_text(got, failed)
    for name in os.listdir(m.p("tasks", "status=FAILED")) + \
            os.listdir(m.p("tasks")):
        assert not any(ch in name for ch in "=:@|"), name


# ---------------------------------------------------------------------------
# Requests


def test_component_order_shares_one_fetch(server, mounter, main_tasks):
    m = mounter(server, page_size=PAGE, ttl=600)
    a = "additional_data.object_count:gte:300"
    b = "not:status=FAILED"
    exp = [t for t in main_tasks
           if t["additional_data"]["object_count"] >= 300 and
           t["status"] != "FAILED"]
    n_pages = mfs.pages(len(exp), PAGE)
    assert n_pages >= 3
    server.reset()
    before = server.requests()
    check_listing(m, "tasks/%s/%s/" % (a, b), exp)
    mid = server.requests()
    d = mfs.request_delta(before, mid)
    assert d["list"] == n_pages, d
    assert d["total"] == d["list"], d
    check_listing(m, "tasks/%s/%s/" % (b, a), exp)
    d = mfs.request_delta(mid, server.requests())
    assert d["total"] == 0, "the other order fetched again: %r" % d
    # The same components repeated fold into one, too.
    check_listing(m, "tasks/%s/%s/%s/" % (b, a, b), exp)
    d = mfs.request_delta(mid, server.requests())
    assert d["total"] == 0, "a repeated component fetched again: %r" % d
    # Each list request carried the whole query.
    bodies = [mfs.body_of(e) for e in mfs.list_entries(server.log())]
    assert len(bodies) == n_pages
    assert all(bd == bodies[0] for bd in bodies), bodies


def test_settings_in_any_order_share_one_fetch(server, mounter, main_tasks):
    m = mounter(server, page_size=PAGE, ttl=600)
    comps = ["@limit=30", "@sort=-additional_data.object_count",
             "status!=COMPLETED", "@search=bkt_"]
    exp = sort_tasks([t for t in main_tasks if t["status"] != "COMPLETED"
                      and search(t, "bkt_")],
                     AD + "object_count", True)[:30]
    server.reset()
    before = server.requests()
    check_listing(m, "tasks/" + "/".join(comps), exp)
    mid = server.requests()
    d = mfs.request_delta(before, mid)
    assert d["list"] == 1 and d["total"] == 1, d
    check_listing(m, "tasks/" + "/".join(reversed(comps)), exp)
    check_listing(m, "tasks/" + "/".join(comps[2:] + comps[:2]), exp)
    d = mfs.request_delta(mid, server.requests())
    assert d["total"] == 0, "another order fetched again: %r" % d


def test_same_query_from_status_folder_and_tasks_folder_differ(
        server, mounter, main_tasks):
    """by-status/FAILED/X/ and tasks/X/ are different listings."""
    m = mounter(server, page_size=PAGE, ttl=600)
    x = "additional_data.bucket_id=bkt_media"
    check_listing(m, "tasks/" + x, [
        t for t in main_tasks
        if t["additional_data"]["bucket_id"] == "bkt_media"])
    check_listing(m, "by-status/FAILED/" + x, [
        t for t in main_tasks if t["status"] == "FAILED" and
        t["additional_data"]["bucket_id"] == "bkt_media"])
    check_listing(m, "by-type/thumbnail/" + x, [
        t for t in main_tasks if t["task_type"] == "thumbnail" and
        t["additional_data"]["bucket_id"] == "bkt_media"])


@pytest.mark.parametrize("n", [20, 250])
def test_limit_is_one_request(server, mounter, main_tasks, n):
    m = mounter(server, page_size=PAGE, ttl=600)
    server.reset()
    check_listing(m, "tasks/@sort=-created_at/@limit=%d" % n,
                  sort_tasks(main_tasks, "created_at", True)[:n])
    entries = mfs.list_entries(server.log())
    queries = [mfs.query_of(e) for e in entries]
    assert len(entries) == 1, queries
    assert queries[0].get("limit") == str(n), queries
    assert queries[0].get("offset", "0") in ("", "0"), queries
    assert mfs.body_of(entries[0]).get("sort") == \
        {"field": "created_at", "direction": "desc"}, mfs.body_of(entries[0])


# ---------------------------------------------------------------------------
# Malformed components: EINVAL and one log line


MALFORMED = [
    # (path under the mount, text the log line must contain)
    ("tasks/status:like:FAILED", "like"),
    ("tasks/additional_data.progress:exists:maybe", "maybe"),
    ("tasks/additional_data.current_tier:is_null:yes", "yes"),
    ("tasks/@limit=0", "@limit"),
    ("tasks/@limit=abc", "@limit"),
    ("tasks/description=bad%zzescape", "percent"),
    ("tasks/description=cut%2", "percent"),
    ("tasks/not:status=FAILED|status=CANCELED", "not:"),
    ("tasks/status=FAILED|garbage", "garbage"),
    # a raw '|' splits a regex into an OR group: "ray)" is no condition
    ("tasks/description:regex:^(worker|ray)", "ray)"),
    ("tasks/@sort=", "@sort"),
    ("tasks/@bogus=1", "@bogus"),
    ("by-status/FAILED/status:like:x", "like"),
    ("by-type/thumbnail/@limit=-1", "@limit"),
    ("tasks/status=FAILED/@limit=0", "@limit"),
]


def test_malformed_components_einval(server, mounter):
    m = mounter(server, page_size=PAGE, ttl=600)
    problems = []
    for rel, word in MALFORMED:
        comp = rel.rsplit("/", 1)[1]
        since = len(m.stderr())
        e1 = mfs.errno_of(os.listdir, m.p(rel))
        e2 = mfs.errno_of(os.stat, m.p(rel))
        if e1 != errno.EINVAL or e2 != errno.EINVAL:
            problems.append("%s: listdir %s, stat %s (expected EINVAL)"
                            % (rel, errno.errorcode.get(e1, e1),
                               errno.errorcode.get(e2, e2)))
        lines = [l for l in new_stderr(m, since).splitlines()
                 if comp in l]
        if len(lines) < 1 or not all(word in l for l in lines):
            problems.append("%s: log lines %r (want ones naming %r, "
                            "saying %r)" % (rel, lines, comp, word))
        elif len(lines) > 2:
            # one line per failed lookup (listdir + stat = 2 lookups)
            problems.append("%s: %d log lines for 2 lookups: %r"
                            % (rel, len(lines), lines))
    assert not problems, "\n".join(problems)
    assert m.proc.poll() is None


def test_malformed_one_line_per_lookup(server, mounter):
    m = mounter(server, page_size=PAGE, ttl=600)
    since = len(m.stderr())
    assert mfs.errno_of(os.stat, m.p("tasks", "x:nope:1")) == errno.EINVAL
    lines = [l for l in new_stderr(m, since).splitlines() if l.strip()]
    assert len(lines) == 1, lines
    assert "x:nope:1" in lines[0] and "nope" in lines[0], lines


def test_bad_regex_is_einval_with_api_message(server, mounter):
    m = mounter(server, page_size=PAGE, ttl=600)
    since = len(m.stderr())
    server.reset()
    rel = "tasks/description:regex:(unclosed"
    assert mfs.errno_of(os.stat, m.p(rel)) == errno.EINVAL
    lines = [l for l in new_stderr(m, since).splitlines() if l.strip()]
    assert len(lines) == 1, lines
    # the API's own message: "invalid regular expression '(unclosed': ..."
    assert "invalid regular expression" in lines[0], lines
    assert "(unclosed" in lines[0] and "missing )" in lines[0], lines
    entries = mfs.list_entries(server.log())
    assert len(entries) == 1 and entries[0].get("status") == 422, entries
    # Under a status folder and a query folder too.
    rel2 = "by-status/FAILED/status=FAILED/task_id:regex:[z-a]"
    assert mfs.errno_of(os.listdir, m.p(rel2)) == errno.EINVAL
    # A valid regex next to it still works (the 422 is not cached there).
    check_regex = "tasks/description:regex:^Worker"
    assert os.path.isdir(m.p(check_regex))
    assert m.proc.poll() is None


def test_task_ids_are_not_components(server, mounter, main_tasks):
    """Task ids (task_..., UUIDs) under a query folder are tasks."""
    m = mounter(server, page_size=PAGE, ttl=600)
    uuid_task = next(t for t in main_tasks if "-" in t["task_id"] and
                     t["status"] == "COMPLETED")
    plain_task = next(t for t in main_tasks
                      if t["task_id"].startswith("task_") and
                      t["status"] == "COMPLETED")
    for t in (uuid_task, plain_task):
        p = m.p("tasks", "status!=FAILED", mfs.escape_name(t["task_id"]),
                "status")
        with open(p) as f:
            assert f.read() == "COMPLETED\n"


# ---------------------------------------------------------------------------
# What reaches the API: typed and percent-decoded values


def _conditions(body):
    """Every condition dict anywhere in a list body's filters."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            if "field" in v:
                out.append(v)
            else:
                for k, e in v.items():
                    if k != "case_sensitive":
                        walk(e)
        elif isinstance(v, list):
            for e in v:
                walk(e)
    walk((body or {}).get("filters"))
    return out


VALUE_CASES = [
    # (component, field, operator, value the API must get)
    ("additional_data.object_count=896", "additional_data.object_count",
     "eq", 896),
    ('additional_data.object_count="896"', "additional_data.object_count",
     "eq", "896"),
    ("additional_data.progress=0.35", "additional_data.progress", "eq",
     0.35),
    ("additional_data.object_count:gt:-12", "additional_data.object_count",
     "gt", -12),
    ("additional_data.current_tier=null", "additional_data.current_tier",
     "eq", None),
    ('additional_data.current_tier="null"', "additional_data.current_tier",
     "eq", "null"),
    ("flag!=true", "flag", "ne", True),
    ("flag=false", "flag", "eq", False),
    ("additional_data.total_tiers:in:1,\"2\",x", "additional_data.total_tiers",
     "in", [1, "2", "x"]),
    ("description:contains:502", "description", "contains", "502"),
    ("description:text:true", "description", "text", "true"),
    ("description:starts_with:12.5", "description", "starts_with", "12.5"),
    ("additional_data.progress:exists:false", "additional_data.progress",
     "exists", False),
    ("error:is_null:true", "error", "is_null", True),
    ("description=a%2Fb%20c%7Cd%2Ce%25f", "description", "eq", "a/b c|d,e%f"),
    ("status:in:A%2CB,C%7CD", "status", "in", ["A,B", "C|D"]),
    ("description:regex:x%7Cy", "description", "regex", "x|y"),
    ("description:contains:100%25", "description", "contains", "100%"),
    ("description:contains:a:b", "description", "contains", "a:b"),
]


def test_typed_and_decoded_values_reach_the_api(server, mounter):
    m = mounter(server, page_size=PAGE, ttl=600)
    problems = []
    for comp, field, op, value in VALUE_CASES:
        server.reset()
        r = mfs.sh("ls -U -- %s >/dev/null" % shlex.quote("tasks/" + comp),
                   m.path, check=False)
        entries = mfs.list_entries(server.log())
        if r.returncode != 0 or not entries:
            problems.append("%s: ls rc %d, %d list requests: %s"
                            % (comp, r.returncode, len(entries), r.err))
            continue
        conds = _conditions(mfs.body_of(entries[0]))
        want = {"field": field, "operator": op, "value": value}
        ok = len(conds) == 1 and all(
            conds[0].get(k) == v and type(conds[0].get(k)) is type(v)
            for k, v in want.items())
        if not ok:
            problems.append("%s: API got %r, want %r" % (comp, conds, want))
    search_cases = [("@search=application%2Fx-msdownload",
                     "application/x-msdownload"),
                    ("@search=permission%20denied", "permission denied"),
                    ("@search=a%25b%7Cc%2Cd", "a%b|c,d")]
    for comp, want in search_cases:
        server.reset()
        mfs.sh("ls -U -- %s >/dev/null" % shlex.quote("tasks/" + comp),
               m.path)
        entries = mfs.list_entries(server.log())
        got = mfs.body_of(entries[0]).get("search") if entries else None
        if got != want:
            problems.append("%s: API got search %r, want %r"
                            % (comp, got, want))
    assert not problems, "\n".join(problems)


def test_not_and_or_reach_the_api_as_groups(server, mounter, main_tasks):
    """not:C is the API's NOT, A|B an OR group; status folder stays."""
    m = mounter(server, page_size=PAGE, ttl=600)
    server.reset()
    rel = ("by-status/FAILED/not:additional_data.bucket_id=bkt_media/"
           "task_type=thumbnail|task_type=video_segment")
    check_listing(m, rel, [
        t for t in main_tasks if t["status"] == "FAILED" and
        t["additional_data"]["bucket_id"] != "bkt_media" and
        t["task_type"] in ("thumbnail", "video_segment")])
    body = mfs.body_of(mfs.list_entries(server.log())[0])
    assert body.get("status") == "FAILED", body
    text_ = repr(body["filters"])
    assert "NOT" in body["filters"] and "OR" in text_, body
