#!/usr/bin/env python3
"""The README inside the mount, made from the man page.

mixpeekfs(1) is the one reference for the layout, the query grammar, the
hidden files, freshness, .mixpeekfs/ and the errors.  The mount's README
is its sections from LAYOUT to ERRORS (every section between them too),
rendered here as plain text, so that nothing is written twice.  The build
runs this script (man/meson.build) and src/vfile.c includes its output;
tests/integration/test_layout.py reads the README from a mount and checks
it against this script's rendering of the man page and against groff's.

    readme.py MAN OUT.h     write the C header (#define VFILE_README_TEXT)
    readme.py MAN           print the plain text

Only the man(7) requests below may be used in those sections; anything
else stops the build, so that nothing is dropped silently:
  .SH .SS .PP .P .LP .TP .IP .RS .RE .nf .fi .EX .EE .br .sp
  .B .I .BR .BI .IB .RB .IR .RI   and comments (.\\")
Escapes: \\- \\e \\& \\% \\~ \\(space) \\fB \\fI \\fR \\fP and \\(xx for
xx in NAMED below.
The text must be ASCII.
"""

import re
import sys

FIRST, LAST = "LAYOUT", "ERRORS"
WIDTH = 76      # the longest filled line
BODY = 4        # indent of section text; .SS titles at 2, .SH at 0
STEP = 4        # .TP and .RS indent
TITLE_FMT = "%s\n\nOptions, costs, logs and troubleshooting: man mixpeekfs\n"

NAMED = {"bu": "-", "ha": "^", "dq": '"', "at": "@", "aq": "'", "em": "--",
         "en": "-", "lq": '"', "rq": '"', "oq": "'", "cq": "'", "ti": "~",
         "mu": "x", ">=": ">=", "<=": "<=", "->": "->"}
FONTS = {"B", "I", "BR", "BI", "IB", "RB", "IR", "RI"}
NBSP = "\0"     # a space that does not break a line


def unescape(text, where):
    """roff escapes to plain text; an unknown one is an error."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            if ord(c) > 126 or (ord(c) < 32 and c != "\t"):
                raise SystemExit("%s: not ASCII: %r" % (where, c))
            out.append(c)
            i += 1
            continue
        e = text[i + 1:i + 2]
        if e == "-":
            out.append("-")
        elif e == "e" or e == "\\":
            out.append("\\")
        elif e == "&" or e == "%":
            pass
        elif e == " " or e == "~":
            out.append(NBSP)
        elif e == "f" and text[i + 2:i + 3] in ("B", "I", "R", "P"):
            i += 1
        elif e == "(" and text[i + 2:i + 4] in NAMED:
            out.append(NAMED[text[i + 2:i + 4]])
            i += 2
        else:
            raise SystemExit("%s: escape %r is not rendered by %s"
                             % (where, text[i:i + 4], sys.argv[0]))
        i += 2
    return "".join(out)


def args_of(rest):
    """A request's arguments, with roff's double quotes."""
    args = []
    i = 0
    while i < len(rest):
        if rest[i] == " ":
            i += 1
            continue
        if rest[i] == '"':
            j = i + 1
            word = []
            while j < len(rest):
                if rest[j] == '"':
                    if rest[j + 1:j + 2] == '"':
                        word.append('"')
                        j += 2
                        continue
                    break
                word.append(rest[j])
                j += 1
            args.append("".join(word))
            i = j + 1
        else:
            j = rest.find(" ", i)
            j = len(rest) if j < 0 else j
            args.append(rest[i:j])
            i = j
    return args


class Page:
    """Filled plain text, built paragraph by paragraph."""

    def __init__(self):
        self.lines = []
        self.words = []
        self.base = BODY    # left margin of paragraphs
        self.indent = BODY  # of the current paragraph's lines
        self.first = None   # the first line's prefix, for .IP
        self.nofill = False
        self.tag_next = False

    def blank(self):
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def flush(self):
        if not self.words:
            return
        first = self.first
        line = ""
        for w in self.words:
            w = w.replace(NBSP, " ")
            pad = " " * self.indent if first is None else first
            if line and len(line) + 1 + len(w) <= WIDTH:
                line += " " + w
            elif line:
                self.lines.append(line)
                first = None
                line = " " * self.indent + w
            else:
                line = pad + w
        self.lines.append(line)
        self.words = []
        self.first = None

    def text(self, s):
        if self.nofill:
            self.lines.append((" " * (self.base + 2) + s.replace(NBSP, " "))
                              .rstrip())
            return
        if self.tag_next:
            self.tag_next = False
            self.lines.append(" " * self.base + s.strip().replace(NBSP, " "))
            self.indent = self.base + STEP
            return
        self.words.extend(s.split())

    def paragraph(self, indent):
        self.flush()
        self.blank()
        self.indent = indent


def font(name, args):
    if name in ("B", "I"):
        return " ".join(args)
    return "".join(args)


def render(lines, where):
    p = Page()
    for n, raw in enumerate(lines, 1):
        at = "%s, line %d of the section" % (where, n)
        if raw.startswith(".\\\"") or raw.startswith("'\\\""):
            continue
        if not raw.startswith("."):
            p.text(unescape(raw, at))
            continue
        m = re.match(r"\.(\S+)\s*(.*)$", raw)
        req, rest = m.group(1), m.group(2)
        args = [unescape(a, at) for a in args_of(rest)]
        if req in FONTS:
            if not args:
                raise SystemExit("%s: .%s without arguments" % (at, req))
            p.text(font(req, args))
        elif req == "SS":
            p.flush()
            p.blank()
            p.lines += ["  " + " ".join(args), ""]
            p.base = p.indent = BODY
        elif req in ("PP", "P", "LP"):
            p.base = BODY
            p.paragraph(p.base)
        elif req == "TP":
            p.paragraph(p.base)
            p.tag_next = True
        elif req == "IP":
            p.paragraph(p.base + 2)
            mark = args[0] if args else ""
            p.first = " " * p.base + (mark + " " if mark else "  ")
        elif req == "RS":
            p.flush()
            p.base += STEP
            p.indent = p.base
        elif req == "RE":
            p.flush()
            p.base = max(BODY, p.base - STEP)
            p.indent = p.base
        elif req in ("nf", "EX"):
            p.flush()
            p.nofill = True
        elif req in ("fi", "EE"):
            p.nofill = False
        elif req == "sp":
            p.flush()
            p.blank()
        elif req == "br":
            p.flush()
        else:
            raise SystemExit("%s: .%s is not rendered by %s"
                             % (at, req, sys.argv[0]))
    p.flush()
    return p.lines


def sections(man):
    """{name: [lines]} for every .SH of the page, in order."""
    out = {}
    name = None
    for line in man.splitlines():
        m = re.match(r"\.SH\s+(.*)$", line)
        if m:
            name = " ".join(args_of(m.group(1)))
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return out


def readme(man):
    """The mount's README: the title from NAME, then FIRST to LAST."""
    secs = sections(man)
    names = list(secs)
    if FIRST not in secs or LAST not in secs:
        raise SystemExit("the man page has no %s or no %s section"
                         % (FIRST, LAST))
    title = " ".join(unescape(l, "NAME") for l in secs["NAME"]
                     if not l.startswith("."))
    out = (TITLE_FMT % title).splitlines()
    for name in names[names.index(FIRST):names.index(LAST) + 1]:
        out += ["", name, ""]
        out += render(secs[name], name)
    while out and out[-1] == "":
        out.pop()
    text = "\n".join(out) + "\n"
    long = [l for l in text.splitlines() if len(l) > WIDTH + 30]
    if long:
        raise SystemExit("a line of the README is too long: %r" % long[0])
    return text


def c_header(text):
    out = ["/* Generated by man/readme.py from man/mixpeekfs.1: do not "
           "edit. */",
           "#define VFILE_README_TEXT \\"]
    for line in text.splitlines(True):
        lit = line.replace("\\", "\\\\").replace('"', '\\"') \
            .replace("?", "\\?").replace("\n", "\\n")
        out.append('\t"%s" \\' % lit)
    out.append('\t""')
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="ascii") as f:
        text = readme(f.read())
    if len(sys.argv) == 2:
        sys.stdout.write(text)
        return
    with open(sys.argv[2], "w", encoding="ascii") as f:
        f.write(c_header(text))


if __name__ == "__main__":
    main()
