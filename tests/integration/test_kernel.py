"""What newer kernels do differently (issue 22).

Linux 6.19 to 7.1 (at least) fail FUSE_NOTIFY_INVAL_ENTRY with ENOENT for
a name the kernel caches as absent, and keep it absent until its
timeout. The kernel here may not have that bug, so a stand-in for the
notify call (a preloaded library that answers ENOENT, as those kernels
do, and invalidates nothing) shows the fallback: once an invalidation
of an absent name failed, absent names are kept for 1 s, not the ttl.
"""

import errno
import os
import subprocess
import time

import pytest

import mfs
from mfs import wait_until

SHIM = r"""
#include <errno.h>
#include <stddef.h>
/* As Linux 6.19 to 7.1 answer for a name cached as absent: ENOENT, and
 * the name stays absent. */
int fuse_lowlevel_notify_inval_entry(void *se, unsigned long parent,
				     const char *name, size_t namelen)
{
	(void)se; (void)parent; (void)name; (void)namelen;
	return -ENOENT;
}
"""


@pytest.fixture
def shim(tmp_path):
    src = tmp_path / "inval_enoent.c"
    src.write_text(SHIM)
    lib = str(tmp_path / "inval_enoent.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, str(src)],
                   check=True, capture_output=True)
    return lib


def task(i):
    return {"task_id": i, "task_type": "thumbnail", "status": "PENDING",
            "inputs": [], "outputs": [], "additional_data": {},
            "error": None}


def test_absent_names_brief_when_kernel_keeps_them(server, mounter, shim):
    env = {"LD_PRELOAD": shim}
    opts = os.environ.get("ASAN_OPTIONS", "")
    # the stand-in comes before the sanitizer runtime in the preload list
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
        "verify_asan_link_order=0"
    m = mounter(server, page_size=100, ttl=600, env_extra=env)
    os.listdir(m.p("tasks"))
    # absent, then there: the refresh's invalidation "fails"
    assert mfs.errno_of(os.stat, m.p("tasks", "task_late_1")) == errno.ENOENT
    server.put_tasks([task("task_late_1")])
    mfs.read(m, "tasks", ".refresh")
    wait_until(lambda: "kept for 1 s" in m.stderr(), 30,
               "the log line of the fallback")
    # from now on an absent name is kept for 1 s: one that appears is
    # reachable by path soon after the listing that has it
    assert mfs.errno_of(os.stat, m.p("tasks", "task_late_2")) == errno.ENOENT
    server.put_tasks([task("task_late_2")])
    mfs.read(m, "tasks", ".refresh")
    seen = time.monotonic()
    assert "task_late_2" in os.listdir(m.p("tasks"))
    wait_until(lambda: os.path.isdir(m.p("tasks", "task_late_2")), 30,
               "task_late_2 to be reachable by path")
    # 1 s of kernel cache, and the poll's own steps; the ttl is 600 s
    assert time.monotonic() - seen < 20
    assert m.stderr().count("kept for 1 s") == 1


# ---------------------------------------------------------------------------
# the kernel's limit on a request's answer (Linux 6.14 and later)

REQUEST_TIMEOUT = "/proc/sys/fs/fuse/default_request_timeout"


@pytest.fixture
def request_timeout():
    """Set fs.fuse.default_request_timeout for the mounts made meanwhile;
    restored after the test whatever happens."""
    if not os.path.exists(REQUEST_TIMEOUT) or \
            not os.access(REQUEST_TIMEOUT, os.W_OK):
        pytest.skip("no writable %s (Linux < 6.14, or not root)"
                    % REQUEST_TIMEOUT)
    with open(REQUEST_TIMEOUT) as f:
        old = f.read().strip()

    def put(value):
        with open(REQUEST_TIMEOUT, "w") as f:
            f.write(str(value))
    yield put
    put(old)


@pytest.mark.timeout(240)
def test_wait_answers_before_the_kernel_gives_up(server, mounter,
                                                 main_tasks,
                                                 request_timeout):
    """With a kernel limit of 20 s on a request's answer, a .wait on a
    task that never ends answers ETIMEDOUT first (after 15 s), and the
    mount lives on; without that the kernel aborts the whole mount."""
    pending = mfs.ids_where(main_tasks, status="PENDING")[0]
    request_timeout(20)
    m = mounter(server, page_size=100, ttl=600, extra_opts=["timeout=5"])
    try:
        assert mfs.read(m, "README")  # the INIT is done: the limit is set
    finally:
        request_timeout(0)
    assert "ETIMEDOUT after 15 s" in m.stderr(), m.stderr()
    t0 = time.monotonic()
    r = mfs.sh("cat tasks/%s/.wait" % mfs.escape_name(pending), m.path,
               check=False, timeout=200)
    took = time.monotonic() - t0
    assert r.returncode != 0 and "timed out" in r.err, (r.out, r.err)
    assert took >= 14, took
    # the mount is alive: what is cached and what needs the API answer
    assert mfs.read(m, "README")
    assert mfs.read(m, "tasks", mfs.escape_name(pending), "status") == \
        b"PENDING\n"
