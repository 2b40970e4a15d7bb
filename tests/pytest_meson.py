"""pytest for meson: ``python3 tests/pytest_meson.py PYTEST-ARGS...``.

Exits with pytest's status, except that a run that failed nothing but
skipped tests while FUSE is unavailable here (mfs.fuse_unavailable_reason:
no /dev/fuse, no fusermount3) exits 77, which meson reports as SKIP, not OK.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "integration"))
import mfs  # noqa: E402


class Skips(object):
    """pytest plugin: counts the tests skipped (an xfail is no skip)."""

    def __init__(self):
        self.n = 0

    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail"):
            self.n += 1


def meson_status(rc, skipped, fuse_reason):
    """The exit status for meson from pytest's."""
    if rc == 0 and skipped and fuse_reason:
        return 77
    return rc


def main(args):
    skips = Skips()
    rc = int(pytest.main(args, plugins=[skips]))
    reason = mfs.fuse_unavailable_reason()
    status = meson_status(rc, skips.n, reason)
    if status == 77:
        print("SKIP: %d tests skipped: %s" % (skips.n, reason))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
