"""-o cache_size= bounds the task cache; the least recently used go first."""

import mfs


def test_small_cache_evicts_and_refetches(server, main_tasks, mounter):
    # room for a few dozen packed tasks, not for all 1000
    m = mounter(server, page_size=100, ttl=600,
                extra_opts=["cache_size=40K"])
    server.reset()
    r = mfs.sh("ls -U tasks", m.path)
    assert mfs.lines(r.out) == [mfs.escape_name(t["task_id"])
                                for t in main_tasks]
    listed = server.requests()
    assert listed["list"] == mfs.pages(len(main_tasks), 100)
    # the last tasks listed are still cached, the first ones were dropped
    last, first = main_tasks[-1], main_tasks[0]
    with open(m.p("tasks", mfs.escape_name(last["task_id"]), "status")) as f:
        assert f.read() == last["status"] + "\n"
    assert mfs.request_delta(listed, server.requests())["total"] == 0
    with open(m.p("tasks", mfs.escape_name(first["task_id"]),
                  "description")) as f:
        assert f.read() == first["description"] + "\n"
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
