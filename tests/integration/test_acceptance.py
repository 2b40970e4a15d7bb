"""Issue 2's acceptance, as a new user would try it: 5,000 tasks."""

import json
import os

import pytest

import mfs


@pytest.fixture(scope="module")
def server5k(fuse_ok, workdir):
    srv = mfs.Server(os.path.join(workdir, "srv-5k"), count=5000, seed=5,
                     extra_keys=True)
    yield srv
    srv.stop()


@pytest.mark.timeout(300)
def test_5000_tasks_as_a_user_sees_them(server5k, mounter):
    tasks = server5k.dataset()
    assert len(tasks) == 5000
    failed = [t for t in tasks if t["status"] == "FAILED"]
    timeouts = sorted(mfs.escape_name(t["task_id"]) for t in failed
                      if "timeout" in t["description"])
    assert failed and timeouts
    page_size = 250
    m = mounter(server5k, page_size=page_size, ttl=600)
    server5k.reset()

    # ls by-status/FAILED lists exactly the failed tasks, in the API's order
    r = mfs.sh("ls -U by-status/FAILED", m.path)
    assert mfs.lines(r.out) == [mfs.escape_name(t["task_id"]) for t in failed]
    after_ls = server5k.requests()
    assert after_ls["list"] == mfs.pages(len(failed), page_size)
    assert after_ls["get"] == 0

    # grep across every description: the right files, no request
    r = mfs.sh("grep -l timeout by-status/FAILED/*/description", m.path)
    got = sorted(p.split("/")[2] for p in mfs.lines(r.out))
    assert got == timeouts

    # reading every file of every listed task costs nothing more
    r = mfs.sh("cat by-status/FAILED/*/status | sort | uniq -c", m.path)
    assert r.out.split() == [str(len(failed)), "FAILED"]
    mfs.sh("grep -r -c . by-status/FAILED > /dev/null", m.path)
    mfs.sh("ls -lR by-status/FAILED > /dev/null", m.path)
    assert mfs.request_delta(after_ls, server5k.requests())["total"] == 0

    # jq on task.json gives the task as the API has it
    for t in (tasks[0], tasks[2500], tasks[-1]):
        path = "tasks/%s/task.json" % mfs.escape_name(t["task_id"])
        r = mfs.sh("jq -r .status " + path, m.path)
        assert r.out == t["status"] + "\n"
        with open(m.p(path)) as f:
            assert json.load(f) == t

    # listing every task: ceil(N/page_size) list requests
    before = server5k.requests()
    r = mfs.sh("ls tasks | wc -l", m.path)
    assert int(r.out) == 5000
    delta = mfs.request_delta(before, server5k.requests())
    assert delta["list"] == mfs.pages(5000, page_size)
    assert delta["get"] == 0


def test_rejected_key_fails_on_the_terminal(server5k, workdir):
    mnt = os.path.join(workdir, "rejected")
    os.makedirs(mnt, exist_ok=True)
    r = mfs.run_mixpeekfs(["-o", "url=" + server5k.url, mnt],
                          key="sk_wrong_key_123")
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "rejected the key" in err and "401" in err
    assert "sk_wrong_key_123" not in err
    assert not os.path.ismount(mnt)
