"""-o cache_size= bounds the task cache; the least recently used go first."""

import os

import mfs


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
