"""-o cache_size= bounds the task records, the listings and the nodes of
their entries; the least recently used go first, and what went is fetched
again, right, when it is needed."""

import os

import pytest

import mfs

CACHE = 16 << 20


def stats_of(m):
    with open(m.p(".mixpeekfs", "stats")) as f:
        return {k: int(v) for k, v in
                (line.rstrip("\n").split(" ", 1) for line in f)
                if v.isdigit()}


def kept(s):
    """What counts against cache_size, from .mixpeekfs/stats."""
    return s["task_bytes"] + s["listing_bytes"] + s["node_bytes"]


def test_small_cache_evicts_and_refetches(server, main_tasks, mounter):
    # FAILED tasks of 1 MB each (random hex: about half of it packed),
    # more than the smallest cache (16M) holds
    failed = [t["task_id"] for t in main_tasks if t["status"] == "FAILED"]
    assert len(failed) * (1 << 19) > 2 * (16 << 20)
    for i in failed:
        server.update_task(i, {"blob": os.urandom(1 << 19).hex()})
    m = mounter(server, page_size=10, ttl=600,
                extra_opts=["cache_size=16M"])
    server.reset()
    r = mfs.sh("ls -U by-status/FAILED", m.path)
    assert mfs.lines(r.out) == [mfs.escape_name(i) for i in failed]
    listed = server.requests()
    assert listed["list"] == mfs.pages(len(failed), 10)
    # the last tasks listed are still cached, the first ones were dropped
    assert mfs.read(m, "tasks", mfs.escape_name(failed[-1]),
                    "status") == b"FAILED\n"
    assert mfs.request_delta(listed, server.requests())["total"] == 0
    assert mfs.read(m, "tasks", mfs.escape_name(failed[0]),
                    "status") == b"FAILED\n"
    delta = mfs.request_delta(listed, server.requests())
    assert delta["get"] == 1 and delta["list"] == 0


def test_bad_cache_size_is_refused(server, workdir):
    import os
    mnt = os.path.join(workdir, "badcache")
    os.makedirs(mnt, exist_ok=True)
    r = mfs.run_mixpeekfs(["-o", "url=%s,cache_size=lots" % server.url,
                           mnt])
    assert r.returncode != 0
    assert b"cache_size" in r.stderr
    assert not os.path.ismount(mnt)


@pytest.mark.timeout(600)
def test_listings_and_nodes_evicted_then_refetched(big_server, mounter):
    """Listing every task three times over (tasks/, then every status
    and every type folder), and then in query folders of every task until
    that holds more than the smallest cache: the least recently used
    listing (tasks/) goes, the kernel forgets its entries
    (their nodes go), and listing or reading it again fetches it again,
    with the right data."""
    ds = big_server.dataset()
    ids = [t["task_id"] for t in ds]
    by_id = {t["task_id"]: t for t in ds}
    groups = [("by-status", "status"), ("by-type", "task_type")]
    folders = sorted({(g, t[field]) for g, field in groups for t in ds})
    big_server.reset()
    m = mounter(big_server, page_size=1000, ttl=600,
                extra_opts=["cache_size=16M"])
    names = sorted(mfs.escape_name(i) for i in ids)
    r = mfs.sh("ls -U tasks", m.path, timeout=300)
    assert sorted(mfs.lines(r.out)) == names
    first = stats_of(m)
    assert first["nodes"] > len(ids)      # the kernel keeps an entry each
    assert kept(first) <= CACHE
    for g, value in folders:
        field = dict(groups)[g]
        r = mfs.sh("ls -U %s/%s" % (g, value), m.path, timeout=300)
        want = [t["task_id"] for t in ds if t[field] == value]
        assert sorted(mfs.lines(r.out)) == sorted(mfs.escape_name(i)
                                                  for i in want)
    # query folders of every task, until the total passes the cap (how
    # many it takes depends on how small records and nodes are)
    queries = 0
    while queries < 8:
        s = stats_of(m)
        if s["invalidations"] > 0 or kept(s) > CACHE:
            break
        queries += 1
        r = mfs.sh("ls -U 'tasks/task_id!=none-%d'" % queries, m.path,
                   timeout=300)
        assert sorted(mfs.lines(r.out)) == names
    # the total went over the cap: listings went, the kernel forgot
    # their folders, and FORGET freed the nodes of their entries
    s = mfs.wait_until(lambda: (lambda s: kept(s) <= CACHE and s)(
        stats_of(m)), 120, "what is kept to fit in cache_size")
    assert s["listings_cached"] < 1 + len(folders) + queries
    assert s["invalidations"] > 0
    assert s["nodes"] < 3 * len(ids)
    before = big_server.requests()
    # tasks/ (the least recently used) was dropped: fetched again, whole
    r = mfs.sh("ls -U tasks", m.path, timeout=300)
    assert sorted(mfs.lines(r.out)) == names
    delta = mfs.request_delta(before, big_server.requests())
    # every page once (a deep listing may take a few more: its ends and
    # ranges), and no task one by one
    full = mfs.pages(len(ids), 1000)
    assert full <= delta["list"] <= full + 10
    assert delta["get"] == 0
    # files below a dropped folder read right
    for i in ids[:: len(ids) // 20]:
        t = by_id[i]
        assert mfs.read(m, "tasks", mfs.escape_name(i),
                        "status") == (t["status"] + "\n").encode()
        assert mfs.read(m, "by-status", t["status"], mfs.escape_name(i),
                        "task_type") == (t["task_type"] + "\n").encode()
        assert mfs.read(m, "by-type", t["task_type"], mfs.escape_name(i),
                        "status") == (t["status"] + "\n").encode()
    s = stats_of(m)
    assert kept(s) <= CACHE + (2 << 20)   # a margin: FORGETs on their way
    # nothing but the listings of tasks/ and of folders dropped again
    delta = mfs.request_delta(before, big_server.requests())
    assert delta["get"] <= 40 and delta["delete"] == 0
