"""One request budget, paced instead of refused, a person's lookup first
(issue 20).

The test server enforces Mixpeek's rate limits (a token bucket per key,
a cap on the requests in flight, X-RateLimit-* headers on every answer,
429 with Retry-After: "Rate limits" in tests/server/mixpeek_server.py).
The daemon must not send what the server's bucket would refuse, must
never fail a request for waiting its turn, must serve a person's request
before the further pages of a listing, must answer what needs no request
(README, .mixpeekfs/*) at once while requests wait, must give up a
waiting request on a FUSE interrupt, and must merge GETs and .wait polls
into list requests with a task_id `in` filter.

Every count and order is taken from the server (/_test/stats and its
request log: "time" is when the reply was sent, "limited" says which
limit refused a request); expectations come from the server's data.
The only times asserted are lower bounds of gaps the daemon itself must
keep, and upper bounds far above what a slow machine needs.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

import mfs
from mfs import ids_where, names, wait_until

# The data set of this file's own server (conftest: as the shared one's).
OWN_COUNT = 1000

# Slack for comparing the server's reply times with time.time() here.
SLACK = mfs.CLOCK_SLACK


# ---------------------------------------------------------------------------
# fixtures

@pytest.fixture
def own_server(limits_server):
    """A 1,000-task server of this file's own, reset as `server` is, for
    the tests that cap or count the requests in flight: a request of an
    earlier test still on its way (a listing whose reader gave up, one
    the hang fault held until its config was replaced) would take a slot
    of the shared server's, or raise its max_in_flight statistic."""
    limits_server.reset(dataset=True, faults=True, limits=True)
    yield limits_server
    limits_server.reset(dataset=True, faults=True, limits=True)


# ---------------------------------------------------------------------------
# helpers

def parse_stats(text):
    return dict(l.partition(" ")[::2] for l in text.splitlines() if l)


def whole_stats(text, key="merged"):
    """The stats text if it is whole: it ends a line and has key's line
    (merged, the scheduler's last)."""
    return text.endswith("\n") and ("\n%s " % key) in text and text


def stats(m, key="merged"):
    """.mixpeekfs/stats as a dict. It is rendered on every read: one that
    came out longer than its size a moment before is cut short, so read
    it again then (a text that never has key's line fails)."""
    texts = []

    def whole():
        texts.append(mfs.read(m, ".mixpeekfs", "stats").decode())
        return whole_stats(texts[-1], key)
    try:
        text = wait_until(whole, 10, "whole stats")
    except AssertionError as e:
        raise AssertionError("%s; the last read:\n%s" % (e, texts[-1]))
    return parse_stats(text)


def quick_stats(m, timeout):
    """.mixpeekfs/stats read by cat, which must answer within timeout s
    (again if the text came out cut), as a dict."""
    for _ in range(5):
        text = quick_cat(m, ".mixpeekfs", "stats", timeout=timeout).decode()
        if whole_stats(text):
            return parse_stats(text)
    raise AssertionError("stats without the scheduler's lines:\n" + text)


in_filter_ids = mfs.in_filter_ids
asked_for = mfs.asked_for


def by_id_lists(log):
    """The list requests of a log that ask for tasks by id."""
    return [e for e in mfs.list_entries(log)
            if in_filter_ids(mfs.body_of(e))]


def refused(log):
    """The 429 answers of a log."""
    return [e for e in log if e.get("status") == 429]


def answered_pages(log, page_size):
    """The list requests of a listing (limit=page_size) answered 200."""
    return [e for e in mfs.list_entries(log) if e.get("status") == 200
            and mfs.query_of(e).get("limit") == str(page_size)]


def held(log):
    """The requests of a log that have no answer yet."""
    return [e for e in log if e.get("status") is None]


def start(argv, **kw):
    return subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, LC_ALL="C.UTF-8"), **kw)


def ended(proc, timeout=60, what="the process to end"):
    """Poll until proc has ended; the time.time() it was seen ended."""
    wait_until(lambda: proc.poll() is not None, timeout, what)
    return time.time()


def no_hung(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def listed(proc, what, timeout=120):
    """The sorted names an `ls` process printed; it must succeed."""
    ended(proc, timeout, "ls of %s to end" % what)
    out, err = proc.communicate()
    assert proc.returncode == 0, "ls %s: %d %r" % (what, proc.returncode,
                                                    err[-2000:])
    return sorted(mfs.lines(out.decode("utf-8", "surrogateescape")))


def quick_cat(m, *parts, timeout):
    """cat of a file of the mount that must answer within timeout s."""
    try:
        r = subprocess.run(["cat", m.p(*parts)], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("cat %s did not answer within %ds"
                             % ("/".join(parts), timeout))
    assert r.returncode == 0, (r.returncode, r.stderr)
    return r.stdout


def all_ids(srv):
    return [t["task_id"] for t in srv.dataset()]


# ---------------------------------------------------------------------------
# pacing: what the server's bucket would refuse is not sent

@pytest.mark.timeout(120)
def test_a_listing_is_paced_not_refused(own_server, mounter):
    """120 a minute in bursts of 5, 5 in flight: the 11 pages of `ls
    tasks` (12 requests with the probe) are more than the burst, and they
    are sent as the bucket refills, at most 5 at once.

    Without the scheduler a listing sends its pages 8 at once and
    retries the refused ones: the server refuses most of them for rate
    (12 here), and, when its answers take time, has more than 5 in
    flight and refuses some for concurrency."""
    srv = own_server
    srv.limits(rate_per_minute=120, burst=5, max_in_flight=5)
    m = mounter(srv, page_size=100, ttl=600)
    assert sorted(os.listdir(m.p("tasks"))) == names(all_ids(srv))
    st = srv.stats()["limits"]
    log = srv.log()
    # the listing needed pacing: more requests than the burst holds
    assert len(answered_pages(log, 100)) == mfs.pages(OWN_COUNT, 100) > 5
    assert st["refused_rate"] + st["refused_concurrency"] <= 2, \
        (st, [(e["query"], e["limited"]) for e in refused(log)])
    assert st["max_in_flight"] <= 5, st


@pytest.mark.timeout(120)
def test_the_headers_are_read(own_server, mounter):
    """After a paced listing, .mixpeekfs/stats shows the limits the
    server's X-RateLimit-* headers told (source headers, 120 a minute, a
    window of 60 s), and the daemon said once that it paces requests.

    A daemon without the scheduler has none of these lines and says
    nothing."""
    srv = own_server
    cfg = srv.limits(rate_per_minute=120, burst=5, max_in_flight=5)
    rate = cfg["rate_per_minute"]
    m = mounter(srv, page_size=100, ttl=600)
    assert sorted(os.listdir(m.p("tasks"))) == names(all_ids(srv))
    # the listing was paced: more requests than the burst
    assert len(answered_pages(srv.log(), 100)) > cfg["burst"]
    s = stats(m)
    assert s["limits.source"] == "headers", s
    assert s["limits.rate_per_minute"] == str(rate), s
    assert s["limits.header.limit"] == str(rate), s
    assert s["limits.header.window"] == "60", s
    err = m.stderr()
    said = "pacing requests to the API's limit: %d a minute " \
           "(from X-RateLimit-Limit)" % rate
    assert err.count(said) == 1, err
    assert len(re.findall(r"info: pacing requests", err)) == 1, err


@pytest.mark.timeout(150)
def test_without_headers_the_limit_is_learned_from_refusals(own_server,
                                                            mounter):
    """A server (a proxy) that sends no X-RateLimit-* headers, 60 a
    minute in bursts of 5, 5 in flight: the 20 pages of `ls tasks`
    (page_size 50; 21 requests with the probe) succeed, and the daemon
    learns the limit from the first refusals: every 429 is answered
    within a second (their Retry-After) of the first one, the requests
    that were on their way before the daemon could know, no more than
    max_connections (8) and the few sent as the first answers came; none
    after. (The share of 429s over a whole listing on the documented plan
    is bench/limits' step noheaders.)

    Without the scheduler every page is sent 8 at once and retried on
    each 429 without learning: they are refused again and again, for as
    long as the listing lasts, and it may fail."""
    srv = own_server
    srv.limits(rate_per_minute=60, burst=5, max_in_flight=5, headers=False)
    m = mounter(srv, page_size=50, ttl=600)
    assert sorted(os.listdir(m.p("tasks"))) == names(all_ids(srv))
    log = srv.log()
    assert len(answered_pages(log, 50)) == mfs.pages(OWN_COUNT, 50)
    no = refused(log)
    what = [(e["query"], e["limited"], e["time"]) for e in no]
    assert no, "the bucket never ran out: nothing was learned"
    first = min(e["time"] for e in no)
    assert all(e["time"] < first + 1.0 for e in no), what
    assert len(no) <= 8 + 3, what
    s = stats(m)
    assert s["limits.source"] == "refusals", s


@pytest.mark.timeout(150)
def test_waiting_is_not_a_timeout(server, mounter):
    """60 a minute in bursts of 2 and timeout=2: the 11 pages of `ls
    tasks` (12 requests with the probe) take about 10 s of budget, far
    beyond the timeout, and succeed with every task; the daemon waits for
    tokens instead of being refused (at most 2 429s).

    Without the scheduler the time spent retrying 429s counts against
    timeout=2: the listing fails with EIO (or is refused many times)."""
    server.limits(rate_per_minute=60, burst=2)
    m = mounter(server, page_size=100, ttl=600, extra_opts=["timeout=2"])
    t0 = time.time()
    assert sorted(os.listdir(m.p("tasks"))) == names(all_ids(server))
    log = server.log()
    pages = answered_pages(log, 100)
    assert len(pages) == mfs.pages(len(all_ids(server)), 100)
    # the listing really waited longer than the timeout
    assert mfs.last_answer(pages) - t0 > 2 + SLACK, \
        [e["time"] - t0 for e in pages]
    no = refused(log)
    assert len(no) <= 2, [(e["query"], e["limited"]) for e in no]


@pytest.mark.timeout(150)
def test_max_rate_paces_to_the_option(server, mounter):
    """max_rate=60 against a server without limits: bursts of 10, then a
    request a second. The 20 pages of `ls tasks` (page_size 50) and the
    probe: after the first 11 requests of the listing (the burst, and one
    whose token may have refilled while the burst was sent), each arrives
    at least 0.8 s after the one before (0.2 s for the jitter of the
    daemon's wake-ups and of the server's reply times), and .mixpeekfs/stats
    shows limits.max_rate 60.

    Without the scheduler there is no max_rate option (the mount fails),
    and the pages would all be sent within a fraction of a second."""
    m = mounter(server, page_size=50, ttl=600, extra_opts=["max_rate=60"])
    server.reset()
    assert sorted(os.listdir(m.p("tasks"))) == names(all_ids(server))
    log = server.log()
    pages = answered_pages(log, 50)
    assert len(pages) == len(mfs.list_entries(log)) == \
        mfs.pages(len(all_ids(server)), 50)
    times = [e["time"] for e in pages]        # in the order they arrived
    paced = times[10:]
    gaps = [b - a for a, b in zip(paced, paced[1:])]
    assert len(gaps) >= 8, times
    assert min(gaps) >= 0.8, gaps
    # and on the whole, a request a second at most
    assert paced[-1] - paced[0] >= (len(paced) - 1) * 1.0 - 0.2, gaps
    assert stats(m)["limits.max_rate"] == "60"


@pytest.mark.timeout(150)
def test_max_connections_caps_the_whole_daemon(own_server, mounter):
    """max_connections=3 and four listings at once (tasks,
    by-status/COMPLETED, by-type/thumbnail, tasks/status=FAILED), 100 ms
    of latency so that their requests overlap: every listing is right and
    the server never saw more than 3 requests in flight.

    Without the scheduler max_connections caps each listing on its own:
    four listings have up to 4 x 3 requests in flight."""
    srv = own_server
    srv.faults(latency_ms=100)
    tasks = srv.dataset()
    m = mounter(srv, page_size=50, ttl=600,
                extra_opts=["max_connections=3"])
    srv.reset()
    folders = {
        "tasks": ids_where(tasks),
        "by-status/COMPLETED": ids_where(tasks, status="COMPLETED"),
        "by-type/thumbnail": ids_where(tasks, task_type="thumbnail"),
        "tasks/status=FAILED": ids_where(tasks, status="FAILED"),
    }
    procs = {f: start(["ls", m.p(f)]) for f in folders}
    try:
        for f, ids in folders.items():
            assert ids, f
            assert listed(procs[f], f) == names(ids), f
    finally:
        no_hung(procs.values())
    st = srv.stats()
    # the listings had more pages than 3 at once
    assert st["requests"]["list"] > 3 * len(folders), st
    assert st["limits"]["max_in_flight"] <= 3, st


@pytest.mark.timeout(180)
def test_a_person_goes_before_the_pages_of_a_listing(server, mounter):
    """60 a minute in bursts of 2; `ls tasks` with page_size 50 needs 20
    pages (about 20 s of budget). Once 4 of them are answered, `cat
    tasks/<id>/status` of a task on the listing's last page (so the
    daemon must ask for it) answers with the server's status before the
    listing is done, with at most 2 pages answered between the cat's
    start and the answer to its request.

    Without the order (first come first served) the task's request waits
    behind the 15 or so pages still waiting, or, without the scheduler,
    is refused with them."""
    server.limits(rate_per_minute=60, burst=2)
    tasks = server.dataset()
    m = mounter(server, page_size=50, ttl=600)
    ls = start(["ls", m.p("tasks")])
    try:
        wait_until(lambda: len(answered_pages(server.log(), 50)) >= 4, 60,
                   "4 pages of the listing answered",
                   alive=lambda: ls.poll() is not None and "ls ended")
        # a task of the last page, which the listing has not asked for
        plain = set(mfs.plain_ids([t["task_id"] for t in tasks]))
        index = max(i for i, t in enumerate(tasks) if t["task_id"] in plain)
        target = tasks[index]
        offset = str(index // 50 * 50)
        asked = [mfs.query_of(e).get("offset", "0")
                 for e in mfs.list_entries(server.log())]
        assert offset not in asked, (offset, asked)
        t0 = time.time()
        r = mfs.sh("cat tasks/%s/status" % target["task_id"], m.path,
                   timeout=120)
        running = ls.poll() is None
        assert r.out == target["status"] + "\n"
        log = server.log()
        mine = asked_for(log, target["task_id"])
        assert len(mine) == 1, mine
        answer = mine[0]["time"]
        assert answer >= t0 - SLACK
        pages = answered_pages(log, 50)
        assert running or max(e["time"] for e in pages) > answer, \
            "the listing was done before the cat's answer"
        between = [e for e in pages if t0 - SLACK <= e["time"] <= answer]
        assert len(between) <= 2, \
            "%d pages answered before the cat's request (%.2fs): %r" % (
                len(between), answer - t0,
                [(e["query"], e["time"] - t0) for e in between])
        assert listed(ls, "tasks", timeout=150) == \
            names([t["task_id"] for t in tasks])
    finally:
        no_hung([ls])


INTERRUPTED_CHILD = r"""
import os, signal, sys

class Stop(Exception):
    pass

def stop(signum, frame):
    raise Stop()

signal.signal(signal.SIGINT, stop)
try:
    os.listdir(sys.argv[1])
    print("listed", flush=True)
except Stop:
    print("interrupted", flush=True)
"""


@pytest.mark.timeout(180)
def test_ctrl_c_ends_a_waiting_listing_at_once(server, mounter):
    """A server that holds every request (after the probe), timeout=60:
    `ls by-status/FAILED` killed by SIGINT ends at once with it, a
    program that catches SIGINT around a listing of by-status/CANCELED
    sees the call interrupted, and meanwhile README and .mixpeekfs/stats
    answer at once (stats shows the waiting request).

    Without the change the listing's READDIR runs on a FUSE worker that
    does not answer the interrupt: the kernel waits for its answer (even
    for a SIGINT that kills), so ls ends only when the request times out
    after 60 s; and a stuck worker per listing."""
    m = mounter(server, page_size=100, ttl=600, extra_opts=["timeout=60"])
    server.reset()
    server.faults(hang=True)

    def held_for(status):
        return [e for e in held(mfs.list_entries(server.log()))
                if (mfs.body_of(e) or {}).get("status") == status]

    procs = []
    try:
        ls = start(["ls", m.p("by-status", "FAILED")])
        procs.append(ls)
        wait_until(lambda: held_for("FAILED"), 30,
                   "the held list request of by-status/FAILED",
                   alive=lambda: ls.poll() is not None and "ls ended")
        assert mfs.lines(quick_cat(m, "README", timeout=10).decode())
        s = quick_stats(m, timeout=10)
        assert int(s["requests_waiting"]) >= 1, s
        assert ls.poll() is None, ls.communicate()
        ls.send_signal(signal.SIGINT)
        ended(ls, 20, "ls to end on SIGINT")
        assert ls.returncode == -signal.SIGINT, ls.communicate()

        child = start([sys.executable, "-c", INTERRUPTED_CHILD,
                       m.p("by-status", "CANCELED")])
        procs.append(child)
        wait_until(lambda: held_for("CANCELED"), 30,
                   "the held list request of by-status/CANCELED",
                   alive=lambda: child.poll() is not None and
                   "the child ended: %r" % (child.communicate(),))
        child.send_signal(signal.SIGINT)
        ended(child, 20, "the listing to be interrupted")
        out, err = child.communicate()
        assert (child.returncode, out) == (0, b"interrupted\n"), err
        # the mount still answers
        assert mfs.lines(quick_cat(m, "README", timeout=10).decode())
    finally:
        no_hung(procs)
        server.faults(hang=False)


@pytest.mark.timeout(180)
def test_ten_listings_on_a_slow_api_freeze_nothing(server, mounter):
    """Every answer takes 8 s: ten query folder listings wait, and
    meanwhile README and .mixpeekfs/stats answer within 5 s; then each
    listing is right.

    Without the change each waiting listing holds one of libfuse's 10
    worker threads: README would wait for one to be free, 8 s."""
    tasks = server.dataset()
    counts = {}
    for t in tasks:
        counts[t["task_type"]] = counts.get(t["task_type"], 0) + 1
    types = sorted(counts, key=lambda k: (-counts[k], k))[:10]
    m = mounter(server, page_size=100, ttl=600)
    server.reset()
    server.faults(latency_ms=8000)
    procs = {}
    try:
        for t in types:
            procs[t] = start(["ls", m.p("tasks", "task_type=" + t)])
        wait_until(lambda: len(mfs.list_entries(server.log())) >= 8, 30,
                   "8 list requests sent")
        assert mfs.lines(quick_cat(m, "README", timeout=5).decode())
        s = quick_stats(m, timeout=5)
        assert int(s["requests_waiting"]) >= 1, s
        # the listings were still waiting (two of them wait behind the
        # first 8 requests' 8 s)
        assert any(p.poll() is None for p in procs.values())
        for t in types:
            assert listed(procs[t], t, timeout=150) == \
                names(ids_where(tasks, task_type=t)), t
    finally:
        no_hung(procs.values())
        server.faults()


@pytest.mark.timeout(120)
def test_gets_waiting_together_are_merged(own_server, mounter):
    """600 a minute, 5 in flight (the headers make the daemon start at 5):
    30 tasks read at once (cat tasks/<id>/status, nothing listed), each
    answer taking 300 ms so that 25 of them wait behind the first 5: every
    cat prints the server's status, and the daemon asked for them in at
    most 15 requests, merging the waiting ones into list requests with a
    task_id `in` filter (whose limit holds every id).

    Without the merge every lookup is a GET of its own: 30 requests."""
    srv = own_server
    srv.limits(rate_per_minute=600, burst=100, max_in_flight=5)
    tasks = srv.dataset()
    ids = mfs.plain_ids([t["task_id"] for t in tasks])[::30][:30]
    assert len(ids) == 30
    status = {t["task_id"]: t["status"] for t in tasks}
    m = mounter(srv, page_size=100, ttl=600)
    srv.faults(latency_ms=300)
    srv.reset()
    cats = {i: start(["cat", m.p("tasks", i, "status")]) for i in ids}
    try:
        for i, c in cats.items():
            ended(c, 60, "cat of %s" % i)
            out, err = c.communicate()
            assert (c.returncode, out, err) == \
                (0, (status[i] + "\n").encode(), b""), i
    finally:
        no_hung(cats.values())
    log = srv.log()
    mine = [e for e in log if any(asked_for([e], i) for i in ids)]
    assert len(mine) <= 15, [(e["method"], e["path"]) for e in mine]
    lists = by_id_lists(log)
    assert set(i for e in lists for i in in_filter_ids(mfs.body_of(e))) <= \
        set(ids)
    assert any(len(in_filter_ids(mfs.body_of(e))) > 1 for e in lists), \
        [(e["method"], e["path"]) for e in mine]
    for e in lists:
        n = len(in_filter_ids(mfs.body_of(e)))
        assert int(mfs.query_of(e)["limit"]) >= n, e
    assert int(stats(m)["merged"]) > 0


@pytest.mark.timeout(150)
def test_polls_of_waited_tasks_share_requests(server, mounter):
    """Ten running tasks read through tasks/<id>/.wait after `ls tasks`
    (no lookup GET): each poll is one list request whose task_id `in`
    filter names all ten, no task is fetched by a GET, and once they are
    all COMPLETED every reader prints it.

    Without the shared poll each waited task is polled by a GET of its
    own: ten requests a poll."""
    tasks = server.dataset()
    template = next(t for t in tasks if t["status"] == "PENDING")
    ids = ["task_limits_poll_%02d" % k for k in range(10)]
    for i in ids:
        mfs.put_task(server, dict(template, task_id=i, status="PENDING"))
    m = mounter(server, page_size=100, ttl=600)
    assert set(ids) <= set(os.listdir(m.p("tasks")))
    server.reset()
    cats = [start(["cat", m.p("tasks", i, ".wait")]) for i in ids]

    def alive():
        done = [c for c in cats if c.poll() is not None]
        return done and "a reader ended: %r" % (done[0].communicate(),)

    try:
        def kept():
            s = stats(m, "waited_tasks")
            return (int(s["waits"]), int(s["waited_tasks"])) == (10, 10)
        wait_until(kept, 60, "the ten reads to be kept", alive=alive)
        # the log is in the order requests arrived: from n0 on, each poll
        # was sent with all ten reads kept
        n0 = len(server.log())

        def polled():
            return [e for e in server.log()[n0:]
                    if any(asked_for([e], i) for i in ids)]
        wait_until(lambda: len(polled()) >= 2, 60, "two polls",
                   alive=alive)
        log = server.log()
        for e in by_id_lists(log):
            asked = in_filter_ids(mfs.body_of(e))
            assert set(asked) <= set(ids), asked
        for e in by_id_lists(log[n0:]):
            asked = in_filter_ids(mfs.body_of(e))
            assert sorted(asked) == sorted(ids), asked
        assert mfs.get_entries(log) == [], \
            [e["path"] for e in mfs.get_entries(log)]
        for i in ids:
            server.update_task(i, {"status": "COMPLETED"})
        for c in cats:
            ended(c, 60, "the wait to end")
            out, err = c.communicate()
            assert (c.returncode, out, err) == (0, b"COMPLETED\n", b"")
    finally:
        no_hung(cats)


# ---------------------------------------------------------------------------
# stale while it refreshes, when the budget is short

@pytest.mark.timeout(180)
def test_a_stale_folder_is_served_while_its_refresh_waits(server, mounter):
    """While a long listing is paced (60 a minute, bursts of 2: `ls
    tasks` of 11 pages), a folder past its ttl is listed at once from
    what was fetched, and its refresh waits for the budget behind the
    listing's pages (background work); .refresh waits for the fresh one,
    which shows the task that joined meanwhile.

    Without the change the stale folder's ls waits for its refresh's
    turn (or, before the scheduler, is refused), and shows the new
    task only then."""
    ttl = 2
    tasks = server.dataset()
    failed = ids_where(tasks, status="FAILED")
    server.limits(rate_per_minute=60, burst=2, max_in_flight=5)
    m = mounter(server, page_size=100, ttl=ttl)
    assert sorted(os.listdir(m.p("by-status", "FAILED"))) == names(failed)
    fetched = time.time()
    answered = mfs.last_answer(mfs.list_entries(server.log()))
    joined = dict(next(t for t in tasks if t["status"] == "FAILED"),
                  task_id="task_limits_joined")
    mfs.put_task(server, joined)
    ls = start(["ls", m.p("tasks")])
    try:
        # pacing, and the FAILED listing past its ttl
        wait_until(lambda: stats(m)["limits.pacing"] == "1", 60,
                   "the listing to be paced", alive=lambda: (
                       ls.poll() is not None and "ls tasks ended"))
        mfs.wait_past_ttl(ttl, fetched, answered)
        before = time.time()
        got = sorted(os.listdir(m.p("by-status", "FAILED")))
        assert ls.poll() is None, "the listing ended: nothing was short"
        assert got == names(failed), "not the stale listing"
        assert mfs.escape_name("task_limits_joined") not in got
        # its refresh was not answered meanwhile: it waits, behind
        fresh = [e for e in mfs.list_entries(server.log())
                 if (mfs.body_of(e) or {}).get("status") == "FAILED" and
                 e["time"] and e["time"] >= before - SLACK]
        assert fresh == [], fresh
        # .refresh waits for the fresh listing
        out = mfs.read(m, "by-status", "FAILED", ".refresh")
        assert out.startswith(b"refreshed ")
        got = sorted(os.listdir(m.p("by-status", "FAILED")))
        assert got == names(failed + ["task_limits_joined"])
        assert listed(ls, "tasks") == names(all_ids(server))
    finally:
        no_hung([ls])
