"""The API's own numbers and strings, byte for byte (issue 11, items 4, 5).

Tasks are put on the server as JSON text (PUT /_test/tasks?exact=1), so
the server sends every number exactly as written here. Each field file
must hold that text and a newline, each string its bytes (a \\u0000 is a
NUL byte), and task.json the same tokens, pretty-printed.
"""

import json
import os

import mfs

NUMBERS = [
    "0.30000000000000004", "9007199254740993", "18446744073709551615",
    "0.0", "-0", "1e400", "1E+2", "-1.50", "1e-400", "2.5E-999999999",
    "-7e+999999999999999999",
    "123456789012345678901234567890.000000000000000000001",
]


def task_text(task_id, pad=0):
    """A task as compact JSON text, with every number form above."""
    fields = ['"task_id":"%s"' % task_id, '"task_type":"numbers_test"',
              '"status":"PROCESSING"']
    fields += ['"n%d":%s' % (i, n) for i, n in enumerate(NUMBERS)]
    fields += ['"list":[1.0,2E1,-0.0]',
               '"deep":{"x":[{"y":[[0.10]]}],"z":{"w":-1.50e-7}}',
               '"s":"a\\u0000b"', '"strs":["x\\u0000","y"]',
               '"esc":"tab\\there \\u00e9\\/"',
               '"pad":"%s"' % ("p" * pad)]
    return "{" + ",".join(fields) + "}"


def exact(text):
    """The JSON text parsed with every number kept as its own text."""
    return json.loads(text, parse_float=str, parse_int=str)


def check_folder(folder, text):
    """Differences between a task folder and the text the API sent."""
    tree, diffs = mfs.read_tree(folder)
    tj = tree.pop("task.json")
    # a number, kept as text, is expected like a string: exactly
    diffs += mfs.compare_tree(mfs.expected_task_tree(exact(text)), tree,
                              folder)
    data = tj.decode("utf-8")
    if not data.endswith("}\n") or '\n  "n0": ' not in data:
        diffs.append("%s/task.json is not pretty-printed: %r"
                     % (folder, data[:200]))
    if exact(data) != exact(text):
        diffs.append("%s/task.json: %r" % (folder, data[:2000]))
    # each on a line of its own, as jq puts them
    for token in NUMBERS + ["1.0,\n", "2E1,\n", "-0.0\n", "0.10\n",
                            "-1.50e-7",
                           '"a\\u0000b"', '"tab\\there \\u00e9\\/"']:
        if token not in data:
            diffs.append("%s/task.json lacks %s" % (folder, token))
    return diffs


def test_numbers_and_nuls_as_sent(server, mounter):
    small, big = task_text("task_numbers01"), \
        task_text("task_numbers02", pad=40000)
    server.put_exact(small)
    server.put_exact(big)
    assert exact(small)["n1"] == "9007199254740993"
    # by GET: the task looked up alone
    m = mounter(server, page_size=100, ttl=600)
    diffs = check_folder(m.p("tasks", "task_numbers01"), small)
    diffs += check_folder(m.p("tasks", "task_numbers02"), big)
    for name, want in (("s", b"a\0b\n"), ("n1", b"9007199254740993\n")):
        with open(m.p("tasks", "task_numbers01", name), "rb") as f:
            got = f.read()
        if got != want:
            diffs.append("%s: %r, not %r" % (name, got, want))
    # by listing: the tasks as the list pages carry them
    m2 = mounter(server, page_size=1000, ttl=600)
    assert "task_numbers02" in os.listdir(m2.p("tasks"))
    server.reset()
    diffs += check_folder(m2.p("tasks", "task_numbers01"), small)
    diffs += check_folder(m2.p("tasks", "task_numbers02"), big)
    assert mfs.get_entries(server.log()) == [], "read from the listing"
    assert not diffs, "\n".join(diffs[:40])
