#!/usr/bin/env python3
"""Mixpeek-compatible test server for mixpeekfs (Python 3.11 stdlib only).

It serves the three public task endpoints of the Mixpeek REST API over a
deterministic data set (dataset.py), plus unauthenticated ``/_test/``
endpoints to inspect traffic, change tasks and inject faults.  It only
listens where told (default 127.0.0.1) and never connects anywhere.

CLI
===
::

    mixpeek_server.py [--count N] [--seed S] [--host H] [--port P]
                      [--port-file PATH] [--latency-ms MS] [--weird]
                      [--extra-keys] [--no-timestamps] [--verbose]
                      [--tls-cert FILE --tls-key FILE [--tls-max VERSION]]
                      [--rate-per-minute N [--burst B]]
                      [--max-in-flight C] [--no-ratelimit-headers]

--count N        tasks to generate (default 5000)
--seed S         generator seed (default 1)
--host H         address to bind (default 127.0.0.1)
--port P         port to bind (default 0: an ephemeral port)
--port-file PATH after binding, write the port number and a newline to
                 PATH (atomically: written to a temporary file, renamed)
--latency-ms MS  sleep this long before answering every /v1 request
--weird          also serve dataset.weird_tasks() (ids "task/evil", "..",
                 a 300-byte id; additional_data keys "", ".", "..", "a/b",
                 "a%2Fb" and a 300-byte key)
--extra-keys     serve the project's extra keys too (description,
                 created_at, updated_at); by default each task has only
                 the seven keys of Mixpeek's published schema (task_id,
                 task_type, status, inputs, outputs, additional_data,
                 error), as the real API sends them
--no-timestamps  with --extra-keys: without created_at/updated_at
--verbose        log every request to stderr (default: quiet)
--tls-cert FILE  serve HTTPS (every path, /_test/ too) with this PEM
--tls-key FILE   certificate and its key instead of plain HTTP; the TLS
                 handshake happens in the connection's own thread
--tls-max V      with TLS: the newest protocol offered, 1.1, 1.2 or 1.3
                 (default: no cap).  1.1 also allows TLS 1.0 and lowers
                 OpenSSL's security level to 0, so that OpenSSL 3 really
                 speaks it.  make_cert() in this module makes a
                 self-signed certificate for tests (openssl req -x509)
--rate-per-minute N  (default 0: no rate limit) a token bucket per API
                 key: see "Rate limits" below
--burst B        the buckets' capacity (default: N); >= 1, and only
                 with --rate-per-minute N > 0
--max-in-flight C  (default 0: no cap) the most API requests handled at
                 once, across all keys (more get 429)
--no-ratelimit-headers  never send X-RateLimit-* headers (as a proxy that
                 strips them); the limits still apply and a 429 still
                 has Retry-After.  Allowed without a rate (it then
                 only shows as "headers": false in /_test/limits)
Negative numbers, --burst without a rate, --burst 0 and non-integers are
argparse errors (exit status 2).  The same options are keyword arguments
of State() and make_server(): rate_per_minute=0, burst=None (the rate),
max_in_flight=0, ratelimit_headers=True (a bad value: ValueError).

The API key is taken from the environment variable MIXPEEK_SERVER_KEY
(default ``sk_test_mixpeekfs``), never from argv.  On start the server
prints ``listening on HOST:PORT`` to stdout.  SIGTERM and SIGINT make it
exit with status 0.  HTTP/1.1 with keep-alive; every response carries
Content-Length; ``Expect: 100-continue`` is honoured.  JSON replies are
compact UTF-8 (non-ASCII characters are sent as such) with
``Content-Type: application/json``.

API endpoints (/v1, need ``Authorization: Bearer <key>``)
=======================================================
Without a valid key: 401 ``{"success": false, "status": 401, "error":
{"message": "Invalid or missing API key", "type": "UnauthorizedError",
"details": null}}``.  ``X-Namespace`` is accepted, never required, and
does not filter anything (the namespaces seen are reported by
/_test/stats).  Other errors use the same envelope; validation errors
are 422 ``ValidationError`` with ``details.validation_errors`` =
``[{"type", "location", "message"}]``.  Unknown paths and methods: 404
``NotFoundError``.

``POST /v1/tasks/list?limit=&offset=&cursor=&include_total=``
    Body: ListTasksRequest, optional (absent, empty, ``null`` or ``{}``
    list everything).  Unknown body keys are ignored; body that is not
    JSON or not an object gives 422.  ``status`` and ``task_type`` are
    exact, case-sensitive matches and must be values of the published
    enums (else 422).  ``limit`` 1..1000, default 100; ``offset``
    0..10000, default 0; a value out of range or not an integer gives
    422 (an empty ``limit=`` too).  ``include_total`` takes
    true/false/1/0/yes/no/on/off.  An empty ``cursor=`` counts as
    absent.  Repeated query parameters: the last one wins.

    Response ``{"results": [...], "pagination": {"total", "page",
    "page_size", "total_pages", "next_page", "previous_page",
    "next_cursor"}}``.  ``total``/``page``/``page_size``/``total_pages``
    are filled in only with include_total=true (page is 1-based,
    page_size is the limit); ``next_page``/``previous_page`` are always
    null.  ``next_cursor`` is non-null exactly when more results follow
    this page, for offset and cursor requests alike.

    Cursor: opaque.  It encodes the position after the page and a
    fingerprint of the query (status, task_type, filters, sort, search),
    so it stays valid while the data changes (positions may then shift,
    as with offsets) and works beyond offset 10000.  When a cursor is
    given, offset is still validated but ignored.  A cursor that does
    not decode, or was issued for a different query, gives 422.  The
    token is standard base64 and always contains '+', '/' and '=':
    clients must percent-encode it in the query string (an unencoded
    '+' arrives as a space and the cursor is rejected).

    Default order (no ``sort``): ``created_at`` descending, ties by
    ``task_id`` ascending; tasks without created_at come last (with
    --no-timestamps this is plain task_id order).
    ``sort: {"field": dotted.path, "direction": "asc"|"desc"}``
    (direction defaults to asc).  Tasks where the field is missing or
    null come last in both directions; ties are broken by task_id
    ascending.  Values of mixed types order numbers < strings < booleans
    < arrays/objects; strings compare case-sensitively by code point.

    ``search``: case-insensitive substring match over task_id,
    task_type, status, description and every string value (not key)
    anywhere inside additional_data.

    ``filters``: a LogicalOperator.
      * ``AND`` (all hold), ``OR`` (at least one holds), ``NOT`` (every
        member is false: NOT[a,b] = not a and not b).  Each takes an
        array (a single object is 422, as the published schema has
        it: schema.py checks every list request against the schema
        after the checks here).  Empty or null arrays are ignored.
        Several keys in one object are ANDed.
      * Any other key is shorthand for an ``eq`` condition:
        ``{"additional_data.bucket_id": "bkt_media"}``.
      * Items with a ``field`` key are conditions, other objects are
        nested groups (``filters`` itself may be a bare condition).  Nesting depth (the filters object is level 1)
        above 10 gives 422.
      * ``case_sensitive`` (default false) on a group applies to the
        group and is inherited by nested groups unless they set it;
        ``case_sensitive`` inside a condition overrides it for that
        condition.  It affects string comparisons only; case-folding is
        ``str.lower()``.
      * Condition ``{"field": dotted.path, "operator": op (default eq),
        "value": v}``; missing field/value, an unknown operator, a value
        of the wrong type or a DynamicValue gives 422.
      * Field paths descend into objects; on an array a numeric segment
        indexes it and any other segment collects that key from the
        object elements (``outputs.collection_id`` is a list).
      * Operators.  When the field's value is an array, every positive
        operator (eq in contains starts_with ends_with regex gt gte lt
        lte text) also matches when any element matches; ne and nin are
        the exact negations of eq and in.
          eq        equal (typed: 1 == 1.0, true != 1; arrays/objects
                    compare deeply); eq null matches null or missing
          ne        not eq
          gt gte lt lte  numbers with numbers (booleans are not numbers),
                    strings with strings; other pairs never match
          in / nin  value must be an array; eq against any member / none
          contains  value a string (substring of a string field) or a
                    scalar (an array field holding an equal element)
          starts_with ends_with  value a string; string fields only
          regex     Python re.search, IGNORECASE unless case-sensitive;
                    an invalid pattern gives 422 naming the re error
          exists    value boolean: the path resolves (even to null)
          is_null   value boolean: true matches null or missing
          text      value a string; every whitespace-separated word must
                    occur (case-insensitively, always) in some string at
                    or below the field
    All conditions (status, task_type, filters, search) are ANDed.  The
    filtered and sorted result is cached per query and data version.

    An index on task_id: a list request sorted by task_id whose
    ``filters.AND`` holds one group ``{"AND": [conditions on task_id with
    gt/gte/lt/lte and string values], "case_sensitive": true}`` is
    answered from the cached result of the same request without that
    group, cut with a binary search (the same tasks, in the same order,
    as filtering would give; it keeps range requests cheap, as an index
    makes them on the real API).

``GET /v1/tasks/{task_id}``
    The id is percent-decoded from a single path segment: ids containing
    "/" must be sent as %2F, ".." as %2E%2E (a raw "/" gives a 404).
    200 with the task, or 404 NotFoundError (403 ForbiddenError for an
    id of the ``forbid_ids`` fault; 404 for one of ``expired_ids``,
    which the list still returns).

``DELETE /v1/tasks/{task_id}``
    Always 200 ``{"message": "Successfully deleted", "success": true}``
    (idempotent, unknown ids too).  A known task with a non-terminal
    status becomes CANCELED (updated_at = now); terminal tasks are left
    as they are.  The task stays listed.

Test endpoints (no auth, never faulted or limited, not counted or logged)
=========================================================================
Every path under /_test/ is a test endpoint; every other path is API
traffic (limited, authenticated, faulted, counted and logged; unknown
ones 404).

GET  /_test/stats    ``{"requests": {"list","get","delete","other",
                     "total"}, "status_codes": {"200": n, ...},
                     "namespaces": [...], "auth_failures": n, "limits":
                     {"refused_rate": n, "refused_concurrency": n,
                     "max_in_flight": n}}`` (limits: the requests refused
                     by each limit, and the most API requests seen being
                     handled at once, counted with or without a cap)
GET  /_test/log      the last 20000 /v1 requests, oldest first:
                     ``{"method","path","query","body","status",
                     "namespace","content_type","time","limited"}`` (path
                     without query string; body is the parsed JSON or
                     null; content_type the request's header or null;
                     status is
                     null for a request held by the hang fault; time is
                     the server's time.time() when the reply was sent
                     (set with status, null while there is none);
                     limited is "rate" or "concurrency" for a request
                     refused by that limit, else null; the Authorization
                     header is never stored)
POST /_test/reset    clear stats and log (and the limits counters; the
                     max_in_flight seen restarts from the requests in
                     flight now).  Optional body: {"dataset": true} also
                     regenerates the original tasks, {"faults": true}
                     also clears the fault config, {"limits": true} also
                     restores the command line's limits (refilling every
                     bucket); without it the limits and buckets stay
GET  /_test/dataset  every task, in the default order
POST /_test/tasks/{task_id}  merge the posted object into the task
                     (shallow); updated_at becomes now unless the object
                     sets it (not added with --no-timestamps); 404 for
                     an unknown id; returns the task
PUT  /_test/tasks    add (201) or replace (200) a task; only a string
                     task_id is required, anything else goes.  With
                     ?exact=1 the task is served as the very text sent
                     (UTF-8), so its numbers keep their text (1E+2, 0.0,
                     9007199254740993); a later POST re-serialises it.
                     A JSON array body adds or replaces every task in it
                     at once (in order, as PUT one by one: a task_id
                     repeated in the array counts as replaced the second
                     time; one data version for all), 200 ``{"added":
                     n, "replaced": m}``; an element that is not an
                     object with a string task_id gives 422 naming its
                     index ("task 3: ...", location ["body", 3,
                     "task_id"]) and nothing changes; ?exact=1 with an
                     array gives 422.  Bodies of this endpoint may be up
                     to 256 MiB (every other request: 16 MiB; beyond,
                     413 PayloadTooLargeError)
POST /_test/key     {"key": "sk_..."}: change the API key the server
                     expects (until changed again; reset keeps it)
GET  /_test/faults   the current fault config (with defaults)
POST /_test/faults   replace the fault config; unknown keys give 422
GET  /_test/limits   the current limits: ``{"rate_per_minute": N,
                     "burst": B, "max_in_flight": C, "headers": bool}``
POST /_test/limits   replace the limits config with any subset of those
                     keys; the others take their defaults (0, the rate,
                     0, true).  Integers >= 0 (not booleans), burst also
                     null (= the rate); burst must be >= 1 with a rate
                     and 0 (or null) without one; headers a boolean.
                     Unknown keys or bad values give 422 (nothing
                     changes).  Every bucket is refilled.  Returns the
                     new config

Faults (apply to /v1 only)
==========================
``latency_ms``  (null = use --latency-ms) sleep before answering
``hang``        (false) hold every request without answering for up to
                3600 s, or until the fault config is replaced (POST
                /_test/faults, a reset with faults): then each held
                request's connection is closed without an answer; other
                connections are still served and shutdown is not
                delayed
``fail_next``   (0) the next N requests get ``error_status``
``error_rate``  (0) fraction of requests answered with ``error_status``
``error_message`` (null) the envelope's message text of the errors
                injected by fail_next and error_rate (null: the default
                text, "Injected fault: ...")
``error_status`` (503) with an envelope whose type fits the code
                (500 InternalServerError, 502 BadGatewayError, 503
                ServiceUnavailableError, 504 GatewayTimeoutError, 401
                UnauthorizedError, 403 ForbiddenError, 429
                TooManyRequestsError (no Retry-After), ...; other codes
                InternalServerError); an injected 401 also counts as an
                auth failure in /_test/stats
``rate_429``    (0) fraction answered 429 TooManyRequestsError with
                ``Retry-After: <retry_after>``
``retry_after`` ("1") value of the Retry-After header
``garbage_rate`` (0) fraction answered 200 text/html ``<html>oops``
``seed``        (null) seed of the fault RNG (reset on every POST)
``forbid_ids``  (null) a list of task id strings: GET /v1/tasks/{id} of
                one of them (known to the data set or not) answers 403
                ``ForbiddenError`` "Forbidden: task <id> belongs to
                another namespace" (details null), whatever the key (a
                request without a valid key still gets its 401 first)
                and X-Namespace; before any ``bad`` mode.  List and
                DELETE requests are unaffected
``expired_ids`` (null) a list of task id strings: GET /v1/tasks/{id} of
                one of them answers 404 NotFoundError, while list
                requests still return it, as Mixpeek's docs say of a
                task that left the fast tier (after about 24 h)
``move_after_first_page`` (null) {"status": S, "to": T, "count": N}:
                once, right after making the first page (offset 0, no
                cursor) of a list request for status S (the body's
                status field), the first N tasks of that answer's order
                move to status T (as POST /_test/tasks would do it), and
                the fault clears itself: the later pages of that listing
                shift, as the real API's offset pages do when tasks
                leave a folder while it is paged
``bad``         (null) one hostile reply to list and get requests:
   truncated_json   valid start, cut in the middle (Content-Length fits)
   wrong_types      some results have status as a number, additional_data
                    as a string, inputs as a string, created_at a number
   missing_task_id  every third result (from the first) has no task_id
   duplicate_ids    pages after the first start with the previous page's
                    last task (limit+1 results; nothing is skipped)
   deep_nesting     the first result's additional_data is nested 1000
                    levels deep
   huge_body        a valid JSON reply padded to ``huge_bytes`` (default
                    200 MiB), streamed in chunks with Content-Length
   short_page       list: about half of limit results, next_cursor set
                    to continue right after them
   long_page        list: limit+5 results (next_cursor after them)
   cursor_loop      list: next_cursor is always the cursor of the second
                    page, on every page, even an empty one
   cursor_endless   list (offset or cursor): exactly limit results, all
                    new synthetic tasks ``task_endless_<n>``, n counting
                    up from 1 over the whole server run (never reset,
                    shared by all queries and clients: no id is ever
                    served twice by a list).  Task n is shaped like the
                    data set's (dataset.py's generator, seeded with n):
                    status STATUSES[n % 13], task_type TASK_TYPES[n %
                    30], created_at 31 days before REFERENCE_TIME minus
                    n seconds (so pages are in the default order),
                    updated_at 30 s later (no timestamps with
                    --no-timestamps).  The body is validated as usual
                    but its conditions and sort do not apply to these
                    results.  next_cursor is always set, and always a
                    new token: a valid cursor of the same query whose
                    position is the page's position + limit, with the
                    next n in it (following it gives the next endless
                    page).  With include_total=true, total is the
                    query's real total, page/page_size/total_pages
                    computed from it as usual.  While the mode is on,
                    GET /v1/tasks/task_endless_<n> of an n already
                    served gives task n
   cursor_endless_nototal  the same, but total, page, page_size and
                    total_pages are always null
   cursor_cycle     list: the real page at the position asked for, but
                    next_cursor is always set and is one of two fixed
                    cursors of the query: A (position limit) on odd
                    pages, B (position 2 * limit) on even ones, the
                    page number being position // limit + 1 (offset or
                    the cursor's position).  Following them gives pages
                    1, 2, 3, 2, 3, ... and cursors A, B, A, B, ...
   total_huge       list: the real reply, but with include_total=true
                    total is 100000000000000 (10^14, task_id_filter's
                    total_off or not) and total_pages ceil(10^14 /
                    limit)
   gzip_bomb        list and get: the 200 reply padded like huge_body
                    to huge_bytes (errors are left alone), sent with
                    ``Content-Encoding: gzip`` (a single gzip member,
                    about 1000 times smaller) and the compressed
                    Content-Length, when the request's
                    Accept-Encoding allows gzip (gzip or x-gzip with
                    q > 0, or * with q > 0 when gzip is not named);
                    otherwise (no Accept-Encoding too) exactly like
                    huge_body.  The uncompressed text is never held in
                    memory (the last 16 compressed replies are cached)
``huge_bytes``  (209715200) size of the huge_body reply and of the
                gzip_bomb reply's uncompressed text
``task_id_filter`` (null) list requests whose filters hold a condition
                on task_id (anywhere in the tree):
   refuse       400 BadRequestError, as an API that cannot filter on it
   ignore       the task_id conditions are dropped (always hold)
   total_off    include_total reports one task more than there is
Order of checks per /v1 request: the limits (below, decided on
arrival), latency, then for a request the limits refused its 429;
otherwise hang, fail_next, error_rate, rate_429, garbage_rate, then auth,
then the endpoint (with ``forbid_ids``, then ``bad``).

Rate limits (apply to /v1 only)
===============================
As Mixpeek documents them (operations/rate-limits-quotas); set by
--rate-per-minute/--burst/--max-in-flight/--no-ratelimit-headers or at
run time by /_test/limits.  "API request" below means any request to a
path outside /_test/ (the /v1 traffic, unknown paths included, as
counted in /_test/stats); test endpoints are never limited, never
counted in flight and never carry X-RateLimit-* headers.

Token bucket (rate N > 0, burst B): one bucket per API key, the value
after ``Bearer `` in Authorization (compared as sent, valid or not; a
request without a Bearer value uses the bucket of the empty key).  A
bucket holds B tokens when created (the first request of its key, and
after a /_test/limits POST or reset limits=true, which drop every
bucket) and refills continuously at N/60 tokens a second, up to B.
Past 4096 keys, buckets that have refilled to full are dropped (the
same as full).

In flight: an API request counts from its arrival (once its body has
been read) until its reply starts to be sent (the slot is freed just
before the first byte, so a client that has its answer never finds
its request still counted), the latency sleep included; a request held
by the hang fault counts until it ends (the fault config replaced,
shutdown, or 3600 s).
Refused requests count too.

On arrival each API request is decided, in this order:
  1. max_in_flight C > 0 and C requests already in flight: refused, 429
     ``TooManyRequestsError`` "Too many concurrent requests", details
     ``{"limit": C, "window": "concurrent", "retry_after": 1}``,
     ``Retry-After: 1``.  It takes no token.
  2. a rate set: it takes one token from its key's bucket; with less
     than one token there it is refused (takes nothing), 429
     ``TooManyRequestsError`` "Rate limit exceeded", details
     ``{"limit": N, "window": "1m", "retry_after": R}`` and
     ``Retry-After: R``, R = ceil((1 - tokens) / (N/60)) seconds, at
     least 1 (when the bucket will hold one token again).
A refused request is logged (``"limited"``), counted in the statistics
and in flight, sleeps the latency, then gets its 429: no other fault,
no auth, no endpoint, and fail_next is not used up.  An accepted one
goes on as described above.

Headers: with a rate set and headers on, every reply this server sends
to an API request (any status: the endpoints' replies, 401, 404, 422,
both kinds of 429, injected faults, garbage, huge_body, gzip_bomb, the
400/413 of a body that cannot be read) carries
  X-RateLimit-Limit      N
  X-RateLimit-Remaining  floor(tokens left in the key's bucket after
                         this request took its token); 0 on a rate 429
  X-RateLimit-Reset      ceil(Unix time at which that bucket will be
                         full again); the current time rounded up when
                         it is full
  X-RateLimit-Window     60
Remaining and Reset are taken when the request is decided (on arrival,
before the latency); a request that takes no token (refused for
concurrency; or a body that cannot be read, answered at once and never
decided, counted, logged or limited) reports its bucket as it is then,
taking nothing.  They are added in Handler.send_response, which every
reply goes through.  Without a rate, or with headers off, there are no
X-RateLimit-* headers (Retry-After stays on 429s).  Replies that
http.server sends itself before a request reaches this server (a
malformed request line, 501 for an unknown method) have none either.
"""

import argparse
import base64
import binascii
import collections
import datetime
import functools
import hashlib
import json
import math
import os
import random
import re
import signal
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
import schema  # noqa: E402

DEFAULT_KEY = "sk_test_mixpeekfs"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10000
MAX_DEPTH = 10
LOG_SIZE = 20000
MAX_BODY = 16 * 1024 * 1024
MAX_TASKS_BODY = 256 * 1024 * 1024      # PUT /_test/tasks
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains",
             "starts_with", "ends_with", "regex", "exists", "is_null",
             "text")
BAD_MODES = ("truncated_json", "wrong_types", "missing_task_id",
             "duplicate_ids", "deep_nesting", "huge_body", "short_page",
             "long_page", "cursor_loop", "cursor_endless",
             "cursor_endless_nototal", "cursor_cycle", "total_huge",
             "gzip_bomb")
ENDLESS_MODES = ("cursor_endless", "cursor_endless_nototal")
ENDLESS_PREFIX = "task_endless_"
HUGE_TOTAL = 10 ** 14
FAULT_DEFAULTS = {
    "latency_ms": None, "error_rate": 0.0, "error_status": 503,
    "rate_429": 0.0, "retry_after": "1", "garbage_rate": 0.0,
    "hang": False, "fail_next": 0, "seed": None, "bad": None,
    "huge_bytes": 200 * 1024 * 1024, "error_message": None,
    "task_id_filter": None, "forbid_ids": None, "expired_ids": None,
    "move_after_first_page": None,
}
TASK_ID_FILTER_MODES = ("refuse", "ignore", "total_off")
LIMIT_KEYS = ("rate_per_minute", "burst", "max_in_flight", "headers")
MAX_BUCKETS = 4096      # past this, full buckets are dropped (as new)
RANGE_OPS = ("gt", "gte", "lt", "lte")
TLS_VERSIONS = ("1.1", "1.2", "1.3")
ERROR_TYPES = {400: "BadRequestError", 401: "UnauthorizedError",
               403: "ForbiddenError", 404: "NotFoundError",
               408: "TimeoutError", 409: "AlreadyExistsError",
               422: "ValidationError", 429: "TooManyRequestsError",
               500: "InternalServerError", 502: "BadGatewayError",
               503: "ServiceUnavailableError", 504: "GatewayTimeoutError"}
CURSOR_MAGIC = b"\xfb\xff"
_MISSING = object()


# ---------------------------------------------------------------- errors

class ApiError(Exception):
    """An error reply in Mixpeek's envelope."""

    def __init__(self, status, etype, message, details=None, headers=()):
        super().__init__(message)
        self.status = status
        self.etype = etype
        self.message = message
        self.details = details
        self.headers = list(headers)

    def body(self):
        return {"success": False, "status": self.status,
                "error": {"message": self.message, "type": self.etype,
                          "details": self.details}}


def invalid(message, location, kind="value_error"):
    return ApiError(422, "ValidationError", message,
                    {"validation_errors": [{"type": kind,
                                            "location": list(location),
                                            "message": message}]})


def not_found(message, details=None):
    return ApiError(404, "NotFoundError", message, details)


def unauthorized():
    return ApiError(401, "UnauthorizedError", "Invalid or missing API key")


class ConfigError(ValueError):
    """A bad limits config value; key names it (None: the whole)."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def normalize_limits(cfg):
    """The complete limits config for a partial one (keys not given take
    their defaults); raises ConfigError.  See /_test/limits."""
    if not isinstance(cfg, dict):
        raise ConfigError("limits config must be a JSON object")
    unknown = sorted(set(cfg) - set(LIMIT_KEYS))
    if unknown:
        raise ConfigError("unknown limits keys: %s" % ", ".join(unknown),
                          unknown[0])
    rate = cfg.get("rate_per_minute", 0)
    if not is_int(rate) or rate < 0:
        raise ConfigError("'rate_per_minute' must be an integer >= 0",
                          "rate_per_minute")
    burst = cfg.get("burst")
    if burst is None:
        burst = rate
    elif not is_int(burst) or burst < 0:
        raise ConfigError("'burst' must be null or an integer >= 0",
                          "burst")
    elif rate > 0 and burst < 1:
        raise ConfigError("'burst' must be >= 1 with a rate", "burst")
    elif rate == 0 and burst != 0:
        raise ConfigError("'burst' needs 'rate_per_minute' > 0", "burst")
    cap = cfg.get("max_in_flight", 0)
    if not is_int(cap) or cap < 0:
        raise ConfigError("'max_in_flight' must be an integer >= 0",
                          "max_in_flight")
    headers = cfg.get("headers", True)
    if not isinstance(headers, bool):
        raise ConfigError("'headers' must be a boolean", "headers")
    return {"rate_per_minute": rate, "burst": burst, "max_in_flight": cap,
            "headers": headers}


def dumps(value):
    """Compact JSON text; a lone surrogate (valid JSON, "\\ud800") cannot
    be UTF-8, so a value holding one is written with \\u escapes."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"))
    return text


def now_iso():
    return dataset.iso(datetime.datetime.now(datetime.timezone.utc))


# ------------------------------------------------------- filter matching

def resolve(doc, path):
    """Value at a dotted path, or _MISSING.  See the module docstring."""
    cur = doc
    for seg in path.split("."):
        if isinstance(cur, dict):
            if seg not in cur:
                return _MISSING
            cur = cur[seg]
        elif isinstance(cur, list):
            if seg.isascii() and seg.isdigit():
                idx = int(seg)
                if idx >= len(cur):
                    return _MISSING
                cur = cur[idx]
            else:
                vals = [e[seg] for e in cur
                        if isinstance(e, dict) and seg in e]
                if not vals:
                    return _MISSING
                cur = vals
        else:
            return _MISSING
    return cur


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fold(v):
    """Lower-case every string in a JSON value."""
    if isinstance(v, str):
        return v.lower()
    if isinstance(v, list):
        return [fold(e) for e in v]
    if isinstance(v, dict):
        return {k: fold(e) for k, e in v.items()}
    return v


def json_eq(a, b):
    """Typed JSON equality: 1 == 1.0, but true != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_num(a) and is_num(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(json_eq, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_eq(a[k], b[k]) for k in a)
    return False


def strings_in(v):
    """Every string at or below a JSON value (values only, not keys)."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for e in v:
            yield from strings_in(e)
    elif isinstance(v, dict):
        for e in v.values():
            yield from strings_in(e)


def any_elem(fv, pred):
    if pred(fv):
        return True
    return isinstance(fv, list) and any(pred(e) for e in fv)


def _compare(op, a, b):
    if is_num(a) and is_num(b) or isinstance(a, str) and isinstance(b, str):
        if op == "gt":
            return a > b
        if op == "gte":
            return a >= b
        if op == "lt":
            return a < b
        return a <= b
    return False


def make_condition(field, op, value, cs, loc):
    """Compile one condition into a predicate over a task."""
    if isinstance(value, dict) and value.get("type") == "dynamic":
        raise invalid("dynamic values are not supported when listing "
                      "tasks", loc + ["value"])
    f = (lambda v: v) if cs else fold
    fv_of = (lambda t: resolve(t, field)) if cs else \
        (lambda t: fold(resolve(t, field)))

    if op in ("eq", "ne", "in", "nin"):
        if op in ("in", "nin"):
            if not isinstance(value, list):
                raise invalid("operator %r needs an array value, got %s"
                              % (op, type(value).__name__), loc + ["value"],
                              "list_type")
            wanted = [f(v) for v in value]
        else:
            wanted = [f(value)]

        def eq_any(t):
            fv = resolve(t, field)
            if fv is _MISSING:
                return any(w is None for w in wanted)
            fv = f(fv)
            return any(any_elem(fv, lambda e, w=w: json_eq(e, w))
                       for w in wanted)
        if op in ("eq", "in"):
            return eq_any
        return lambda t: not eq_any(t)

    if op in ("gt", "gte", "lt", "lte"):
        if not (is_num(value) or isinstance(value, str)):
            raise invalid("operator %r needs a number or string value"
                          % op, loc + ["value"], "type_error")
        v = f(value)
        return lambda t: any_elem(fv_of(t), lambda e: _compare(op, e, v))

    if op == "contains":
        if value is None or isinstance(value, (list, dict)):
            raise invalid("operator 'contains' needs a string (or scalar) "
                          "value", loc + ["value"], "type_error")
        v = f(value)

        def contains(t):
            fv = fv_of(t)
            if isinstance(fv, str):
                return isinstance(v, str) and v in fv
            if isinstance(fv, list):
                return any((isinstance(e, str) and isinstance(v, str)
                            and v in e) or json_eq(e, v) for e in fv)
            return False
        return contains

    if op in ("starts_with", "ends_with"):
        if not isinstance(value, str):
            raise invalid("operator %r needs a string value" % op,
                          loc + ["value"], "string_type")
        v = f(value)
        meth = str.startswith if op == "starts_with" else str.endswith
        return lambda t: any_elem(
            fv_of(t), lambda e: isinstance(e, str) and meth(e, v))

    if op == "regex":
        if not isinstance(value, str):
            raise invalid("operator 'regex' needs a string value",
                          loc + ["value"], "string_type")
        try:
            rx = re.compile(value, 0 if cs else re.IGNORECASE)
        except re.error as exc:
            raise invalid("invalid regular expression %r: %s"
                          % (value, exc), loc + ["value"], "regex_error")
        return lambda t: any_elem(
            resolve(t, field),
            lambda e: isinstance(e, str) and rx.search(e) is not None)

    if op in ("exists", "is_null"):
        if not isinstance(value, bool):
            raise invalid("operator %r needs a boolean value" % op,
                          loc + ["value"], "bool_type")
        if op == "exists":
            return lambda t: (resolve(t, field) is not _MISSING) == value
        return lambda t: (resolve(t, field) in (_MISSING, None)) == value

    # text
    if not isinstance(value, str):
        raise invalid("operator 'text' needs a string value",
                      loc + ["value"], "string_type")
    words = value.lower().split()

    def text(t):
        strs = [s.lower() for s in strings_in(resolve(t, field))]
        return bool(strs) and all(any(w in s for s in strs) for w in words)
    return text


def compile_condition(cond, loc, cs):
    field = cond.get("field")
    if not isinstance(field, str) or not field:
        raise invalid("condition 'field' must be a non-empty string",
                      loc + ["field"], "string_type")
    op = cond.get("operator")
    if op is None:
        op = "eq"
    if op not in OPERATORS:
        raise invalid("unknown operator %s in condition on %r; expected "
                      "one of %s" % (dumps(op), field, ", ".join(OPERATORS)),
                      loc + ["operator"], "enum")
    if "value" not in cond:
        raise invalid("condition on %r has no 'value'" % field,
                      loc + ["value"], "missing")
    ccs = cond.get("case_sensitive")
    if ccs is not None:
        if not isinstance(ccs, bool):
            raise invalid("'case_sensitive' must be a boolean",
                          loc + ["case_sensitive"], "bool_type")
        cs = ccs
    return make_condition(field, op, cond["value"], cs, loc)


def compile_group(obj, loc, depth, cs):
    """Compile a LogicalOperator object into a predicate."""
    if not isinstance(obj, dict):
        raise invalid("a filter group must be a JSON object", loc,
                      "dict_type")
    if depth > MAX_DEPTH:
        raise invalid("filters are nested too deeply: more than %d levels"
                      % MAX_DEPTH, loc, "too_deep")
    gcs = obj.get("case_sensitive")
    if gcs is not None:
        if not isinstance(gcs, bool):
            raise invalid("'case_sensitive' must be a boolean",
                          loc + ["case_sensitive"], "bool_type")
        cs = gcs
    preds = []
    for key, val in obj.items():
        if key == "case_sensitive":
            continue
        if key in ("AND", "OR", "NOT"):
            if val is None:
                continue
            items = [val] if isinstance(val, dict) else val
            if not isinstance(items, list):
                raise invalid("%s must be an array of conditions or groups"
                              % key, loc + [key], "list_type")
            subs = []
            for i, item in enumerate(items):
                iloc = loc + [key, i]
                if isinstance(item, dict) and "field" in item:
                    subs.append(compile_condition(item, iloc, cs))
                elif isinstance(item, dict):
                    subs.append(compile_group(item, iloc, depth + 1, cs))
                else:
                    raise invalid("items of %s must be conditions or "
                                  "groups (JSON objects)" % key, iloc,
                                  "dict_type")
            if not subs:
                continue
            if key == "AND":
                preds.append(lambda t, s=subs: all(p(t) for p in s))
            elif key == "OR":
                preds.append(lambda t, s=subs: any(p(t) for p in s))
            else:
                preds.append(lambda t, s=subs: not any(p(t) for p in s))
        else:
            preds.append(make_condition(key, "eq", val, cs, loc + [key]))
    if not preds:
        return lambda t: True
    if len(preds) == 1:
        return preds[0]
    return lambda t: all(p(t) for p in preds)


def search_matches(task, needle):
    for key in ("task_id", "task_type", "status", "description"):
        v = task.get(key)
        if isinstance(v, str) and needle in v.lower():
            return True
    return any(needle in s.lower()
               for s in strings_in(task.get("additional_data")))


def sort_key(v):
    if is_num(v):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, bool):
        return (2, v)
    return (3, json.dumps(v, sort_keys=True))


def id_key(rec):
    tid = rec.task.get("task_id")
    return tid if isinstance(tid, str) else dumps(tid)


def sort_records(recs, field, desc):
    recs = sorted(recs, key=id_key)
    present, missing = [], []
    for r in recs:
        v = resolve(r.task, field)
        if v is _MISSING or v is None:
            missing.append(r)
        else:
            present.append((sort_key(v), r))
    # list.sort stays stable with reverse=True: ties keep task_id order.
    present.sort(key=lambda p: p[0], reverse=desc)
    return [r for _, r in present] + missing


# ------------------------------------------------ task_id ranges

def mentions_task_id(node):
    """Whether a filters tree holds a condition on task_id."""
    if isinstance(node, list):
        return any(mentions_task_id(n) for n in node)
    if not isinstance(node, dict):
        return False
    if node.get("field") == "task_id" or "task_id" in node:
        return True
    return any(mentions_task_id(v) for v in node.values()
               if isinstance(v, (dict, list)))


def strip_task_id(node):
    """A copy of a filters tree without its conditions on task_id."""
    if isinstance(node, list):
        return [strip_task_id(n) for n in node if not (
            isinstance(n, dict) and n.get("field") == "task_id")]
    if not isinstance(node, dict):
        return node
    return {k: strip_task_id(v) for k, v in node.items()
            if k != "task_id"}


def _range_group(item):
    if not isinstance(item, dict) or set(item) != {"AND", "case_sensitive"} \
            or item["case_sensitive"] is not True or \
            not isinstance(item["AND"], list) or not item["AND"]:
        return None
    conds = []
    for c in item["AND"]:
        if not isinstance(c, dict) or set(c) != {"field", "operator",
                                                 "value"} or \
                c["field"] != "task_id" or c["operator"] not in RANGE_OPS \
                or not isinstance(c["value"], str):
            return None
        conds.append((c["operator"], c["value"]))
    return conds


def split_id_range(data):
    """(the body without its task_id range group, the range's conditions)
    for a body sorted by task_id with one such group in filters.AND, else
    None."""
    if not isinstance(data, dict):
        return None
    sort, filters = data.get("sort"), data.get("filters")
    if not isinstance(sort, dict) or sort.get("field") != "task_id" or \
            not isinstance(filters, dict) or \
            not isinstance(filters.get("AND"), list):
        return None
    groups = [i for i, item in enumerate(filters["AND"])
              if _range_group(item) is not None]
    if len(groups) != 1:
        return None
    conds = _range_group(filters["AND"][groups[0]])
    rest = [item for i, item in enumerate(filters["AND"]) if i != groups[0]]
    base_filters = {k: v for k, v in filters.items() if k != "AND"}
    if rest:
        base_filters["AND"] = rest
    base = {k: v for k, v in data.items() if k != "filters"}
    if base_filters:
        base["filters"] = base_filters
    return base, conds


def id_slice(recs, conds, desc):
    """The records (sorted by task_id) whose id meets every condition."""
    def holds(rec, ops):
        tid = rec.task.get("task_id")
        return isinstance(tid, str) and all(
            _compare(op, tid, v) for op, v in conds if op in ops)

    def first(pred):    # pred is False, then True, along recs
        lo, hi = 0, len(recs)
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(recs[mid]):
                hi = mid
            else:
                lo = mid + 1
        return lo
    low, high = ("gt", "gte"), ("lt", "lte")
    if desc:
        low, high = high, low
    start = first(lambda r: holds(r, low))
    end = first(lambda r: not holds(r, high))
    return recs[start:max(start, end)]


# ------------------------------------------------------------ the query

class Query:
    """A validated ListTasksRequest body."""

    def __init__(self, body):
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object", ["body"],
                          "dict_type")
        status = body.get("status")
        if status is not None and status not in dataset.STATUSES:
            raise invalid("status %s is not one of %s"
                          % (dumps(status), ", ".join(dataset.STATUSES)),
                          ["body", "status"], "enum")
        task_type = body.get("task_type")
        if task_type is not None and task_type not in dataset.TASK_TYPES:
            raise invalid("task_type %s is not a known task type (they "
                          "are lowercase, e.g. thumbnail)" % dumps(task_type),
                          ["body", "task_type"], "enum")
        search = body.get("search")
        if search is not None and not isinstance(search, str):
            raise invalid("search must be a string", ["body", "search"],
                          "string_type")
        sort = body.get("sort")
        if sort is not None:
            if not isinstance(sort, dict):
                raise invalid("sort must be an object {field, direction}",
                              ["body", "sort"], "dict_type")
            field = sort.get("field")
            if not isinstance(field, str) or not field:
                raise invalid("sort.field must be a non-empty string",
                              ["body", "sort", "field"], "string_type")
            direction = sort.get("direction")
            if direction is None:
                direction = "asc"
            if direction not in ("asc", "desc"):
                raise invalid("sort.direction must be \"asc\" or \"desc\"",
                              ["body", "sort", "direction"], "enum")
            sort = {"field": field, "direction": direction}
        filters = body.get("filters")
        pred = None
        if isinstance(filters, dict) and "field" in filters:
            # a bare condition as the whole filter
            pred = compile_condition(filters, ["body", "filters"], False)
        elif filters is not None:
            pred = compile_group(filters, ["body", "filters"], 1, False)
        self.status = status
        self.task_type = task_type
        self.search = search.lower() if search else None
        self.sort = sort
        self.pred = pred
        canon = dumps({"status": status, "task_type": task_type,
                       "filters": filters, "sort": sort,
                       "search": self.search})
        canon = json.dumps(json.loads(canon), sort_keys=True)
        self.fingerprint = hashlib.sha256(canon.encode()).hexdigest()[:16]

    def matches(self, task):
        if self.status is not None and task.get("status") != self.status:
            return False
        if self.task_type is not None and \
                task.get("task_type") != self.task_type:
            return False
        if self.search and not search_matches(task, self.search):
            return False
        return self.pred is None or bool(self.pred(task))

    def run(self, recs):
        recs = [r for r in recs if self.matches(r.task)]
        if self.sort is None:
            return sort_records(recs, "created_at", True)
        return sort_records(recs, self.sort["field"],
                            self.sort["direction"] == "desc")


def encode_cursor(pos, fingerprint, endless=None):
    """A cursor token; endless (the next task_endless_ number) makes it
    unique (decode_cursor ignores it)."""
    data = {"p": pos, "q": fingerprint}
    if endless is not None:
        data["e"] = endless
    raw = CURSOR_MAGIC + dumps(data).encode()
    if len(raw) % 3 == 0:
        raw += b" "     # keep a '=' pad at the end
    return base64.b64encode(raw).decode()


def decode_cursor(token, fingerprint):
    hint = ""
    if " " in token:
        hint = " (it contains a space: was '+' not percent-encoded?)"
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
        if not raw.startswith(CURSOR_MAGIC):
            raise ValueError("bad magic")
        data = json.loads(raw[len(CURSOR_MAGIC):])
        pos, fp = data["p"], data["q"]
        if not isinstance(pos, int) or isinstance(pos, bool) or pos < 0:
            raise ValueError("bad position")
    except (ValueError, KeyError, TypeError, UnicodeError,
            binascii.Error):
        raise invalid("cursor is not valid" + hint, ["query", "cursor"],
                      "cursor_invalid")
    if fp != fingerprint:
        raise invalid("cursor belongs to a different query (status, "
                      "task_type, filters, sort and search must not "
                      "change while paging)", ["query", "cursor"],
                      "cursor_mismatch")
    return pos


def parse_int(params, name, lo, hi, default):
    if name not in params:
        return default
    text = params[name]
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()) or \
            text != text.strip():
        raise invalid("%s must be an integer, got %s" % (name, dumps(text)),
                      ["query", name], "int_parsing")
    n = int(text)
    if n < lo or n > hi:
        raise invalid("%s must be between %d and %d, got %d"
                      % (name, lo, hi, n), ["query", name],
                      "greater_than_equal" if n < lo else "less_than_equal")
    return n


def parse_bool(params, name):
    if name not in params:
        return False
    text = params[name].lower()
    if text in ("true", "1", "yes", "on", "t", "y"):
        return True
    if text in ("false", "0", "no", "off", "f", "n"):
        return False
    raise invalid("%s must be a boolean, got %s"
                  % (name, dumps(params[name])), ["query", name],
                  "bool_parsing")


# ------------------------------------------------------------ the state

class Record:
    """One task; never mutated after creation (copy on write)."""

    __slots__ = ("task", "_json")

    def __init__(self, task, text=None):
        self.task = task
        self._json = text       # the JSON served; None: dumps(task)

    def json(self):
        if self._json is None:
            self._json = dumps(self.task)
        return self._json


class State:
    """Tasks, caches, statistics, request log, fault config and limits
    (their config, buckets and in-flight count)."""

    def __init__(self, count=5000, seed=1, weird=False, timestamps=True,
                 extra_keys=False, latency_ms=0, api_key=DEFAULT_KEY, rate_per_minute=0,
                 burst=None, max_in_flight=0, ratelimit_headers=True):
        self.count = count
        self.seed = seed
        self.weird = weird
        self.extra_keys = extra_keys
        self.timestamps = timestamps and extra_keys
        self.latency_ms = latency_ms
        self.api_key = api_key
        # the command line's limits (a ConfigError is a ValueError)
        self.limit_defaults = normalize_limits({
            "rate_per_minute": rate_per_minute, "burst": burst,
            "max_in_flight": max_in_flight, "headers": ratelimit_headers})
        self.lock = threading.Lock()
        self.shutdown_event = threading.Event()
        self.unhang = threading.Event()     # set: held requests end
        self.cache = collections.OrderedDict()
        self.version = 0
        self.in_flight = 0
        self.endless_next = 1   # the next task_endless_ number (never reset)
        self.forbidden = frozenset()
        self.expired = frozenset()
        self.load_dataset()
        self.reset_stats()
        self.set_faults({})
        self.set_limits(self.limit_defaults)

    def load_dataset(self):
        tasks = dataset.generate(self.count, self.seed, self.timestamps)
        if self.weird:
            tasks += dataset.weird_tasks(self.timestamps)
        if not self.extra_keys:
            tasks = [dataset.published(t) for t in tasks]
        with self.lock:
            self.tasks = {t["task_id"]: Record(t) for t in tasks}
            self.version += 1
            self.cache.clear()

    def reset_stats(self):
        with self.lock:
            self.counts = collections.Counter()
            self.status_codes = collections.Counter()
            self.namespaces = set()
            self.auth_failures = 0
            self.log = collections.deque(maxlen=LOG_SIZE)
            self.refused_rate = 0
            self.refused_concurrency = 0
            self.max_in_flight_seen = self.in_flight

    # -- tasks

    def get(self, task_id):
        with self.lock:
            return self.tasks.get(task_id)

    def put(self, task, text=None):
        with self.lock:
            created = task["task_id"] not in self.tasks
            self.tasks[task["task_id"]] = Record(task, text)
            self.version += 1
            return created

    def put_many(self, tasks):
        """Add or replace every task (in order) as one change; returns
        (added, replaced)."""
        recs = [Record(t) for t in tasks]
        added = 0
        with self.lock:
            for rec in recs:
                tid = rec.task["task_id"]
                if tid not in self.tasks:
                    added += 1
                self.tasks[tid] = rec
            self.version += 1
        return added, len(recs) - added

    def take_endless(self, k):
        """Reserve k task_endless_ numbers; returns the first."""
        with self.lock:
            first = self.endless_next
            self.endless_next += k
            return first

    def endless_served(self, n):
        with self.lock:
            return 1 <= n < self.endless_next

    def is_forbidden(self, task_id):
        with self.lock:
            return task_id in self.forbidden

    def take_move(self, status):
        """The move_after_first_page fault if it is for status (and
        clear it: it happens once), else None."""
        with self.lock:
            move = self.faults.get("move_after_first_page")
            if not move or move["status"] != status:
                return None
            self.faults = dict(self.faults, move_after_first_page=None)
            return move

    def is_expired(self, task_id):
        with self.lock:
            return task_id in self.expired

    def patch(self, task_id, changes):
        with self.lock:
            rec = self.tasks.get(task_id)
            if rec is None:
                return None
            task = dict(rec.task)
            task.update(changes)
            if "updated_at" not in changes and \
                    (self.timestamps or "updated_at" in task):
                task["updated_at"] = self._now_after(task)
            self.tasks[task_id] = Record(task)
            self.version += 1
            return task

    def kill(self, task_id):
        with self.lock:
            rec = self.tasks.get(task_id)
            if rec is None or rec.task.get("status") in dataset.TERMINAL:
                return
            task = dict(rec.task)
            task["status"] = "CANCELED"
            if self.timestamps or "updated_at" in task:
                task["updated_at"] = self._now_after(task)
            self.tasks[task_id] = Record(task)
            self.version += 1

    @staticmethod
    def _now_after(task):
        now = now_iso()
        created = task.get("created_at")
        if isinstance(created, str) and created > now:
            return created
        return now

    def query(self, q):
        """Filtered and sorted records for a query (cached)."""
        with self.lock:
            hit = self.cache.get(q.fingerprint)
            if hit is not None and hit[0] == self.version:
                self.cache.move_to_end(q.fingerprint)
                return hit[1]
            version = self.version
            recs = list(self.tasks.values())
        result = q.run(recs)
        with self.lock:
            if version == self.version:
                self.cache[q.fingerprint] = (version, result)
                self.cache.move_to_end(q.fingerprint)
                while len(self.cache) > 64:
                    self.cache.popitem(last=False)
        return result

    def query_body(self, q, data):
        """query(), with a task_id range cut from the cache (see above)."""
        split = split_id_range(data)
        if split is None:
            return self.query(q)
        base, conds = split
        return id_slice(self.query(Query(base)), conds,
                        data["sort"].get("direction") == "desc")

    # -- statistics

    def record(self, entry, kind):
        with self.lock:
            self.counts[kind] += 1
            if entry["namespace"]:
                self.namespaces.add(entry["namespace"])
            self.log.append(entry)

    def finish(self, entry, status):
        with self.lock:
            entry["status"] = status
            entry["time"] = time.time()
            self.status_codes[str(status)] += 1
            if status == 401:
                self.auth_failures += 1

    def stats(self):
        with self.lock:
            req = {k: self.counts[k]
                   for k in ("list", "get", "delete", "other")}
            req["total"] = sum(req.values())
            return {"requests": req,
                    "status_codes": dict(sorted(self.status_codes.items())),
                    "namespaces": sorted(self.namespaces),
                    "auth_failures": self.auth_failures,
                    "limits": {
                        "refused_rate": self.refused_rate,
                        "refused_concurrency": self.refused_concurrency,
                        "max_in_flight": self.max_in_flight_seen}}

    def log_entries(self):
        with self.lock:
            return [dict(e) for e in self.log]

    # -- faults

    def set_faults(self, cfg):
        if not isinstance(cfg, dict):
            raise invalid("fault config must be a JSON object", ["body"])
        unknown = sorted(set(cfg) - set(FAULT_DEFAULTS))
        if unknown:
            raise invalid("unknown fault keys: %s" % ", ".join(unknown),
                          ["body"] + unknown[:1])
        new = dict(FAULT_DEFAULTS)
        new.update(cfg)

        def check(ok, key, what):
            if not ok:
                raise invalid("fault %r must be %s" % (key, what),
                              ["body", key])
        lat = new["latency_ms"]
        check(lat is None or is_num(lat) and lat >= 0, "latency_ms",
              "null or a number >= 0")
        for key in ("error_rate", "rate_429", "garbage_rate"):
            check(is_num(new[key]) and 0 <= new[key] <= 1, key,
                  "a number from 0 to 1")
        check(isinstance(new["error_status"], int) and
              not isinstance(new["error_status"], bool) and
              100 <= new["error_status"] <= 599, "error_status",
              "an HTTP status code")
        check(isinstance(new["retry_after"], (str, int)) and
              not isinstance(new["retry_after"], bool), "retry_after",
              "a string or integer")
        new["retry_after"] = str(new["retry_after"])
        check(isinstance(new["hang"], bool), "hang", "a boolean")
        check(new["error_message"] is None or
              isinstance(new["error_message"], str), "error_message",
              "null or a string")
        for key in ("fail_next", "huge_bytes"):
            check(isinstance(new[key], int) and
                  not isinstance(new[key], bool) and new[key] >= 0, key,
                  "an integer >= 0")
        check(new["seed"] is None or isinstance(new["seed"], int),
              "seed", "null or an integer")
        check(new["bad"] is None or new["bad"] in BAD_MODES, "bad",
              "null or one of " + ", ".join(BAD_MODES))
        check(new["task_id_filter"] is None or
              new["task_id_filter"] in TASK_ID_FILTER_MODES,
              "task_id_filter",
              "null or one of " + ", ".join(TASK_ID_FILTER_MODES))
        move = new["move_after_first_page"]
        check(move is None or isinstance(move, dict) and
              set(move) == {"status", "to", "count"} and
              isinstance(move["status"], str) and
              isinstance(move["to"], str) and
              isinstance(move["count"], int) and
              not isinstance(move["count"], bool) and move["count"] >= 0,
              "move_after_first_page",
              'null or {"status": S, "to": T, "count": N >= 0}')
        for key in ("forbid_ids", "expired_ids"):
            ids = new[key]
            check(ids is None or isinstance(ids, list) and
                  all(isinstance(i, str) for i in ids), key,
                  "null or an array of task id strings")
        with self.lock:
            self.faults = new
            self.forbidden = frozenset(new["forbid_ids"] or ())
            self.expired = frozenset(new["expired_ids"] or ())
            self.fault_rng = random.Random(new["seed"])
            # the requests held by the hang fault end with its config
            released, self.unhang = self.unhang, threading.Event()
        released.set()
        return dict(new)

    def get_faults(self):
        with self.lock:
            return dict(self.faults)

    # -- limits

    def set_limits(self, cfg):
        """Replace the limits config (see /_test/limits) and refill every
        bucket; returns the new config.  Raises ApiError 422."""
        try:
            new = normalize_limits(cfg)
        except ConfigError as exc:
            raise invalid(str(exc), ["body"] + ([exc.key] if exc.key else
                                                []))
        with self.lock:
            self.limits = new
            self.buckets = {}       # key -> [tokens, time.monotonic()]
        return dict(new)

    def get_limits(self):
        with self.lock:
            return dict(self.limits)

    def _bucket(self, key, now):
        """The key's bucket refilled up to now (lock held, rate set)."""
        rate, burst = self.limits["rate_per_minute"], self.limits["burst"]
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= MAX_BUCKETS:
                for k in [k for k, (tokens, stamp) in self.buckets.items()
                          if tokens + (now - stamp) * rate / 60.0 >= burst]:
                    del self.buckets[k]
            b = self.buckets[key] = [float(burst), now]
        else:
            b[0] = min(float(burst), b[0] + (now - b[1]) * rate / 60.0)
            b[1] = now
        return b

    def _rate_headers(self, tokens):
        """X-RateLimit-* for a bucket holding tokens (lock held)."""
        lim = self.limits
        rate = lim["rate_per_minute"]
        if not rate or not lim["headers"]:
            return []
        full_in = (lim["burst"] - tokens) / (rate / 60.0)
        return [("X-RateLimit-Limit", str(rate)),
                ("X-RateLimit-Remaining", str(math.floor(tokens))),
                ("X-RateLimit-Reset",
                 str(math.ceil(time.time() + max(0.0, full_in)))),
                ("X-RateLimit-Window", "60")]

    def admit(self, key):
        """Decide an arriving API request (see "Rate limits") and count it
        in flight (call leave() once when its reply starts or it ends).
        Returns (None or "rate" or "concurrency", the X-RateLimit-*
        headers of its replies, None or the ApiError 429 to answer)."""
        with self.lock:
            lim = self.limits
            rate, cap = lim["rate_per_minute"], lim["max_in_flight"]
            bucket = self._bucket(key, time.monotonic()) if rate else None
            verdict = refusal = None
            if cap and self.in_flight >= cap:
                verdict = "concurrency"
                self.refused_concurrency += 1
                refusal = ApiError(429, "TooManyRequestsError",
                                   "Too many concurrent requests",
                                   {"limit": cap, "window": "concurrent",
                                    "retry_after": 1},
                                   [("Retry-After", "1")])
            elif rate:
                if bucket[0] >= 1:
                    bucket[0] -= 1
                else:
                    verdict = "rate"
                    self.refused_rate += 1
                    wait = max(1, math.ceil((1 - bucket[0]) /
                                            (rate / 60.0)))
                    refusal = ApiError(429, "TooManyRequestsError",
                                       "Rate limit exceeded",
                                       {"limit": rate, "window": "1m",
                                        "retry_after": wait},
                                       [("Retry-After", str(wait))])
            self.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen,
                                          self.in_flight)
            headers = self._rate_headers(bucket[0]) if rate else []
            return verdict, headers, refusal

    def leave(self):
        """An API request counted by admit() is no longer in flight."""
        with self.lock:
            self.in_flight -= 1

    def peek_headers(self, key):
        """The X-RateLimit-* headers of a key's bucket as it is now, for a
        reply to an API request that was not decided (takes nothing)."""
        with self.lock:
            if not self.limits["rate_per_minute"]:
                return []
            return self._rate_headers(self._bucket(key,
                                                   time.monotonic())[0])

    def draw_fault(self):
        """Decide the fault for one /v1 request (after latency/hang)."""
        with self.lock:
            f = self.faults
            if f["fail_next"] > 0:
                f["fail_next"] -= 1
                return "error"
            rng = self.fault_rng
            if f["error_rate"] and rng.random() < f["error_rate"]:
                return "error"
            if f["rate_429"] and rng.random() < f["rate_429"]:
                return "429"
            if f["garbage_rate"] and rng.random() < f["garbage_rate"]:
                return "garbage"
        return None


# ------------------------------------------------------ hostile replies

def deep_value(levels):
    return '{"level":' * levels + '"bottom"' + "}" * levels


def hostile_task(task, i, mode):
    """A copy of a task damaged for 'wrong_types'/'missing_task_id'."""
    t = dict(task)
    if mode == "wrong_types":
        k = i % 4
        if k == 0:
            st = t.get("status")
            t["status"] = dataset.STATUSES.index(st) \
                if st in dataset.STATUSES else 7
        elif k == 1:
            t["additional_data"] = "not-an-object"
        elif k == 2:
            t["inputs"] = "batch_not_an_array"
            if "created_at" in t:
                t["created_at"] = 1795000000
    elif mode == "missing_task_id" and i % 3 == 0:
        t.pop("task_id", None)
    return t


DEEP_MARK = "\x00deep-nesting-placeholder\x00"
ENDLESS_EPOCH = dataset.REFERENCE_TIME - datetime.timedelta(days=31)
ENDLESS_ID = re.compile(re.escape(ENDLESS_PREFIX) + r"([1-9][0-9]*)")


def endless_task(n, timestamps=True, extra_keys=True):
    """Synthetic task number n of the cursor_endless modes (a pure
    function of n, shaped like the data set's tasks)."""
    task = dataset._one_task(random.Random(n), ENDLESS_PREFIX + str(n),
                             dataset.TASK_TYPES[n % len(dataset.TASK_TYPES)],
                             dataset.STATUSES[n % len(dataset.STATUSES)],
                             False)
    if not extra_keys:
        return dataset.published(task)
    if timestamps:
        created = ENDLESS_EPOCH - datetime.timedelta(seconds=n)
        task["created_at"] = dataset.iso(created)
        task["updated_at"] = dataset.iso(
            created + datetime.timedelta(seconds=30))
    return task


def padded_parts(data, size):
    """(prefix, padding length, suffix) of a JSON object reply padded to
    size bytes with a "padding" member (huge_body, gzip_bomb)."""
    prefix = data[:-1] + b',"padding":"'
    suffix = b'"}'
    return prefix, max(0, size - len(prefix) - len(suffix)), suffix


PAD_CHUNK = b"x" * (1 << 20)


def raw_deflate(data, final):
    """data as raw deflate blocks ending on a byte boundary (a sync
    flush) or, final, ending the stream.  Such pieces concatenate into
    one valid deflate stream: none refers to the data of another."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final
                                      else zlib.Z_SYNC_FLUSH)


@functools.lru_cache(maxsize=1)
def deflated_pad_chunk():
    return raw_deflate(PAD_CHUNK, False)


@functools.lru_cache(maxsize=16)
def gzip_padded(data, size):
    """The gzip member (RFC 1952) of padded_parts(data, size), built
    without the uncompressed text: the padding's 1 MiB chunks are all
    the same compressed piece."""
    prefix, pad, suffix = padded_parts(data, size)
    full, rest = divmod(pad, len(PAD_CHUNK))
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",
             raw_deflate(prefix, False)]
    crc = zlib.crc32(prefix)
    if full:
        parts += [deflated_pad_chunk()] * full
        for _ in range(full):
            crc = zlib.crc32(PAD_CHUNK, crc)
    if rest:
        parts.append(raw_deflate(PAD_CHUNK[:rest], False))
        crc = zlib.crc32(PAD_CHUNK[:rest], crc)
    parts.append(raw_deflate(suffix, True))
    crc = zlib.crc32(suffix, crc)
    length = len(prefix) + pad + len(suffix)
    parts.append(struct.pack("<II", crc, length & 0xFFFFFFFF))
    return b"".join(parts)


def accepts_gzip(value):
    """Whether an Accept-Encoding value allows gzip: gzip or x-gzip with
    q > 0, or (neither named) * with q > 0.  None or "": no."""
    named = star = None
    for item in (value or "").split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            k, _, v = param.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            star = q
    if named is not None:
        return named > 0
    return star is not None and star > 0


def render_task(rec, i, bad):
    if bad in ("wrong_types", "missing_task_id"):
        return dumps(hostile_task(rec.task, i, bad))
    if bad == "deep_nesting" and i == 0:
        t = dict(rec.task)
        t["additional_data"] = DEEP_MARK
        return dumps(t).replace(dumps(DEEP_MARK), deep_value(1000))
    return rec.json()


# --------------------------------------------------------- HTTP handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mixpeek-test-server/1"
    sys_version = ""
    timeout = 300
    rl_headers = None       # X-RateLimit-* of this API request's replies
    holds_slot = False      # this request counts in flight (admit())

    # -- plumbing

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    @property
    def state(self):
        return self.server.state

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    def read_body(self):
        """Read the request body; returns bytes (b"" when none)."""
        limit = MAX_TASKS_BODY if self.command == "PUT" and \
            self.raw_path == "/_test/tasks" else MAX_BODY
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                             b""):
                        pass
                    break
                size += n
                if size > limit:
                    raise ApiError(413, "PayloadTooLargeError",
                                   "request body too large")
                chunks.append(self.rfile.read(n))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        n = int(length)
        if n < 0 or n > limit:
            raise ApiError(413, "PayloadTooLargeError",
                           "request body too large")
        return self.rfile.read(n)

    def send_bytes(self, status, body, ctype="application/json",
                   headers=()):
        self.note_status(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_response(self, code, message=None):
        """Every reply's status line goes through here (send_bytes,
        send_huge, send_error_env and http.server's send_error): the one
        place that adds an API request's X-RateLimit-* headers."""
        super().send_response(code, message)
        for k, v in self.rl_headers or ():
            self.send_header(k, v)

    def release_slot(self):
        """Stop counting this API request in flight (once)."""
        if self.holds_slot:
            self.holds_slot = False
            self.state.leave()

    def bearer_key(self):
        """The rate-limit key: the Bearer value, or "" without one."""
        scheme, _, key = self.headers.get("Authorization", "").partition(
            " ")
        return key if scheme.lower() == "bearer" else ""

    def note_status(self, status):
        """Record a /v1 reply's status before any byte of it is sent, so
        /_test/stats and /_test/log are current once a client has it;
        the request stops counting in flight then too."""
        self.release_slot()
        self.sent_status = status
        entry, self.entry = getattr(self, "entry", None), None
        if entry is not None:
            self.state.finish(entry, status)

    def send_json(self, status, value, headers=()):
        self.send_bytes(status, dumps(value).encode(), headers=headers)

    def send_error_env(self, err):
        self.send_json(err.status, err.body(), err.headers)

    def dispatch(self):
        self.entry = None
        self.rl_headers = None
        split = urllib.parse.urlsplit(self.path)
        self.raw_path = split.path
        self.params = dict(urllib.parse.parse_qsl(split.query,
                                                  keep_blank_values=True))
        is_test = self.raw_path.startswith("/_test/") or \
            self.raw_path == "/_test"
        try:
            try:
                body = self.read_body()
            except (ValueError, ApiError) as exc:
                self.close_connection = True
                err = exc if isinstance(exc, ApiError) else \
                    ApiError(400, "BadRequestError",
                             "malformed request body")
                if not is_test:
                    self.rl_headers = self.state.peek_headers(
                        self.bearer_key())
                self.send_error_env(err)
                return
            if is_test:
                self.handle_test(body)
            else:
                self.handle_api(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.rl_headers = None

    # -- /v1

    def api_kind(self):
        path, method = self.raw_path, self.command
        if path == "/v1/tasks/list" and method == "POST":
            return "list"
        if path.startswith("/v1/tasks/") and \
                "/" not in path[len("/v1/tasks/"):] and \
                len(path) > len("/v1/tasks/"):
            if method == "GET":
                return "get"
            if method == "DELETE":
                return "delete"
        return "other"

    def handle_api(self, body):
        verdict, self.rl_headers, refusal = self.state.admit(
            self.bearer_key())
        self.holds_slot = True
        try:
            self.serve_api(body, verdict, refusal)
        finally:
            self.release_slot()

    def serve_api(self, body, verdict, refusal):
        """An API request admitted (refusal None) or refused by the
        limits (refusal: its 429, sent after the latency)."""
        st = self.state
        parsed = None
        if body:
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError):
                parsed = None
        ns = self.headers.get("X-Namespace")
        entry = {"method": self.command, "path": self.raw_path,
                 "query": dict(self.params), "body": parsed,
                 "status": None, "namespace": ns if ns else None,
                 "content_type": self.headers.get("Content-Type"),
                 "time": None, "limited": verdict}
        kind = self.api_kind()
        st.record(entry, kind)
        faults = st.get_faults()
        latency = faults["latency_ms"]
        if latency is None:
            latency = st.latency_ms
        if latency:
            time.sleep(latency / 1000.0)
        if refusal is None and faults["hang"]:
            with st.lock:
                unhang = st.unhang
            deadline = time.monotonic() + 3600
            while not (unhang.is_set() or st.shutdown_event.is_set()) and \
                    time.monotonic() < deadline:
                unhang.wait(0.2)
            self.close_connection = True
            return
        fault = st.draw_fault() if refusal is None else None
        self.sent_status = None
        self.entry = entry
        try:
            if refusal is not None:
                raise refusal
            if fault == "error":
                code = faults["error_status"]
                msg = faults["error_message"]
                if msg is None:
                    msg = ("Injected fault: the server failed to handle "
                           "the request")
                raise ApiError(code, ERROR_TYPES.get(code,
                                                     "InternalServerError"),
                               msg)
            if fault == "429":
                ra = faults["retry_after"]
                try:
                    ra_n = int(ra)
                except ValueError:
                    ra_n = ra
                raise ApiError(429, "TooManyRequestsError",
                               "Rate limit exceeded",
                               {"limit": 600, "window": "1m",
                                "retry_after": ra_n},
                               [("Retry-After", ra)])
            if fault == "garbage":
                self.send_bytes(200, b"<html>oops", "text/html")
                return
            if not self.authorized():
                raise unauthorized()
            if kind == "list":
                self.api_list(body, faults)
            elif kind == "get":
                self.api_get(faults)
            elif kind == "delete":
                st.kill(self.path_task_id())
                self.send_json(200, {"message": "Successfully deleted",
                                     "success": True})
            else:
                raise not_found("Not Found: %s %s"
                                % (self.command, self.raw_path))
        except ApiError as err:
            self.send_error_env(err)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug in this server: still answer
            if self.server.verbose:
                import traceback
                traceback.print_exc()
            if self.sent_status is None:
                self.send_error_env(ApiError(500, "InternalServerError",
                                             "test server error: %r" % exc))
        finally:
            self.entry = None

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        return scheme.lower() == "bearer" and key == self.state.api_key

    def path_task_id(self):
        return urllib.parse.unquote(self.raw_path[len("/v1/tasks/"):])

    def api_get(self, faults):
        task_id = self.path_task_id()
        if self.state.is_forbidden(task_id):
            raise ApiError(403, "ForbiddenError",
                           "Forbidden: task %s belongs to another namespace"
                           % task_id)
        rec = None if self.state.is_expired(task_id) else \
            self.state.get(task_id)
        bad = faults["bad"]
        if rec is None and bad in ENDLESS_MODES:
            m = ENDLESS_ID.fullmatch(task_id)
            if m and self.state.endless_served(int(m.group(1))):
                rec = Record(endless_task(int(m.group(1)),
                                          self.state.timestamps,
                                          self.state.extra_keys))
        if rec is None:
            raise not_found("Task %s not found" % task_id,
                            {"resource": "task", "id": task_id})
        self.send_payload(render_task(rec, 0, bad), bad, faults)

    def api_list(self, body, faults):
        if body.strip():
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise invalid("request body is not valid JSON: %s" % exc,
                              ["body"], "json_invalid")
        else:
            data = None
        limit = parse_int(self.params, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
        offset = parse_int(self.params, "offset", 0, MAX_OFFSET, 0)
        include_total = parse_bool(self.params, "include_total")
        tid_fault = faults["task_id_filter"]
        if tid_fault and isinstance(data, dict) and \
                mentions_task_id(data.get("filters")):
            if tid_fault == "refuse":
                raise ApiError(400, "BadRequestError",
                               "filters on task_id are not supported")
            if tid_fault == "ignore":
                data = dict(data, filters=strip_task_id(data["filters"]))
        else:
            tid_fault = None
        q = Query(data)
        # then whatever else the published schema does not allow
        bad_part = schema.check("post", "/v1/tasks/list", self.params, data)
        if bad_part:
            where, why = bad_part
            raise invalid("%s %s (the published schema)"
                          % (".".join(str(w) for w in where), why), where,
                          "schema")
        cursor = self.params.get("cursor") or None
        pos = decode_cursor(cursor, q.fingerprint) if cursor else offset
        recs = self.state.query_body(q, data)
        total = len(recs)

        bad = faults["bad"]
        start, end = pos, pos + limit
        if bad == "short_page" and limit > 1:
            end = pos + max(1, limit // 2)
        elif bad == "long_page":
            end = pos + limit + 5
        page = recs[start:end]
        nxt = start + len(page)
        if bad == "duplicate_ids" and 0 < pos <= total:
            page = [recs[pos - 1]] + page
        if bad in ENDLESS_MODES:
            first = self.state.take_endless(limit)
            page = [Record(endless_task(n, self.state.timestamps,
                                        self.state.extra_keys))
                    for n in range(first, first + limit)]
            next_cursor = encode_cursor(pos + limit, q.fingerprint,
                                        first + limit)
        elif bad == "cursor_cycle":
            odd_page = (pos // limit) % 2 == 0
            next_cursor = encode_cursor(limit if odd_page else 2 * limit,
                                        q.fingerprint)
        elif bad == "cursor_loop":
            next_cursor = encode_cursor(min(limit, total), q.fingerprint)
        elif nxt < total:
            next_cursor = encode_cursor(nxt, q.fingerprint)
        else:
            next_cursor = None
        pag = {"total": None, "page": None, "page_size": None,
               "total_pages": None, "next_page": None,
               "previous_page": None, "next_cursor": next_cursor}
        if include_total and bad != "cursor_endless_nototal":
            if tid_fault == "total_off":
                total += 1
            if bad == "total_huge":
                total = HUGE_TOTAL
            pag.update(total=total, page=pos // limit + 1, page_size=limit,
                       total_pages=-(-total // limit))
        text = '{"results":[' + ",".join(
            render_task(r, i, bad) for i, r in enumerate(page)) + \
            '],"pagination":' + dumps(pag) + "}"
        if pos == 0 and not cursor and q.status is not None:
            # after this page is made, before it is sent: whatever the
            # client asks next sees the move
            move = self.state.take_move(q.status)
            for r in recs[:move["count"]] if move else ():
                self.state.patch(r.task["task_id"], {"status": move["to"]})
        self.send_payload(text, bad, faults)

    def send_payload(self, text, bad, faults):
        data = text.encode()
        if bad == "gzip_bomb" and \
                accepts_gzip(self.headers.get("Accept-Encoding")):
            self.send_bytes(200, gzip_padded(data, faults["huge_bytes"]),
                            headers=[("Content-Encoding", "gzip")])
            return
        if bad in ("huge_body", "gzip_bomb"):
            self.send_huge(data, faults["huge_bytes"])
            return
        if bad == "truncated_json":
            data = data[:max(1, len(data) // 2)]
        self.send_bytes(200, data)

    def send_huge(self, data, size):
        prefix, pad, suffix = padded_parts(data, size)
        self.note_status(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length",
                         str(len(prefix) + pad + len(suffix)))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(prefix)
        chunk = b"x" * (1 << 20)
        while pad > 0:
            n = min(pad, len(chunk))
            self.wfile.write(chunk[:n] if n < len(chunk) else chunk)
            pad -= n
        self.wfile.write(suffix)

    # -- /_test

    def handle_test(self, body):
        try:
            self.test_route(body)
        except ApiError as err:
            self.send_error_env(err)

    def json_body(self, body, required=True):
        if not body.strip():
            if required:
                raise invalid("a JSON body is required", ["body"],
                              "missing")
            return None
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise invalid("request body is not valid JSON: %s" % exc,
                          ["body"], "json_invalid")

    def test_route(self, body):
        st, path, method = self.state, self.raw_path, self.command
        if path == "/_test/stats" and method == "GET":
            return self.send_json(200, st.stats())
        if path == "/_test/log" and method == "GET":
            return self.send_json(200, st.log_entries())
        if path == "/_test/reset" and method == "POST":
            opts = self.json_body(body, required=False) or {}
            if not isinstance(opts, dict):
                raise invalid("reset options must be an object", ["body"])
            st.reset_stats()
            if opts.get("dataset"):
                st.load_dataset()
            if opts.get("faults"):
                st.set_faults({})
            if opts.get("limits"):
                st.set_limits(st.limit_defaults)
            return self.send_json(200, {"success": True})
        if path == "/_test/dataset" and method == "GET":
            recs = st.query(Query(None))
            text = "[" + ",".join(r.json() for r in recs) + "]"
            return self.send_bytes(200, text.encode())
        if path == "/_test/key" and method == "POST":
            cfg = self.json_body(body)
            key = cfg.get("key") if isinstance(cfg, dict) else None
            if not isinstance(key, str) or not key:
                raise invalid("a non-empty string 'key' is required",
                              ["body", "key"])
            with st.lock:
                st.api_key = key
            return self.send_json(200, {"success": True})
        if path == "/_test/faults":
            if method == "GET":
                return self.send_json(200, st.get_faults())
            if method == "POST":
                cfg = self.json_body(body)
                return self.send_json(200, st.set_faults(cfg))
        if path == "/_test/limits":
            if method == "GET":
                return self.send_json(200, st.get_limits())
            if method == "POST":
                cfg = self.json_body(body)
                return self.send_json(200, st.set_limits(cfg))
        if path == "/_test/tasks" and method == "PUT":
            task = self.json_body(body)
            if isinstance(task, list):
                if parse_bool(self.params, "exact"):
                    raise invalid("exact=1 takes a single task object, not "
                                  "an array", ["query", "exact"])
                for i, t in enumerate(task):
                    if not isinstance(t, dict) or \
                            not isinstance(t.get("task_id"), str):
                        raise invalid("task %d: a task object with a string "
                                      "task_id is required" % i,
                                      ["body", i, "task_id"])
                added, replaced = st.put_many(task)
                return self.send_json(200, {"added": added,
                                            "replaced": replaced})
            if not isinstance(task, dict) or \
                    not isinstance(task.get("task_id"), str):
                raise invalid("a task object with a string task_id is "
                              "required", ["body", "task_id"])
            text = None
            if parse_bool(self.params, "exact"):
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise invalid("exact=1 needs a UTF-8 body", ["body"])
            created = st.put(task, text)
            return self.send_json(201 if created else 200, task)
        if path.startswith("/_test/tasks/") and method == "POST":
            task_id = urllib.parse.unquote(path[len("/_test/tasks/"):])
            changes = self.json_body(body)
            if not isinstance(changes, dict):
                raise invalid("changes must be a JSON object", ["body"])
            if "task_id" in changes and changes["task_id"] != task_id:
                raise invalid("task_id cannot be changed",
                              ["body", "task_id"])
            task = st.patch(task_id, changes)
            if task is None:
                raise not_found("Task %s not found" % task_id,
                                {"resource": "task", "id": task_id})
            return self.send_json(200, task)
        raise not_found("Not Found: %s %s" % (method, path))


# ---------------------------------------------------------- the server

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128    # many parallel clients connect at once

    def __init__(self, address, state, verbose=False, tls=None):
        self.state = state
        self.verbose = verbose
        self.tls = tls      # an ssl.SSLContext: serve HTTPS
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind() calls getfqdn(), a DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)

    def finish_request(self, request, client_address):
        if self.tls is None:
            return super().finish_request(request, client_address)
        # The handshake runs here, in the connection's thread, so that a
        # client that never sends a ClientHello blocks no one else.
        request.settimeout(30)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if self.verbose:
                print("TLS handshake with %s failed: %s"
                      % (client_address, exc), file=sys.stderr)
            return None
        try:
            return super().finish_request(conn, client_address)
        finally:
            self.shutdown_request(conn)

    def stop(self):
        self.state.shutdown_event.set()
        self.shutdown()
        self.server_close()


def allow_old_tls(ctx):
    """Make an SSLContext speak TLS 1.0 and 1.1 only (server or client).
    OpenSSL 3 speaks them only at security level 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def tls_context(cert, key, tls_max=None):
    """A server-side SSLContext for --tls-cert/--tls-key/--tls-max."""
    if tls_max is not None and tls_max not in TLS_VERSIONS:
        raise ValueError("tls_max must be one of %s"
                         % ", ".join(TLS_VERSIONS))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if tls_max == "1.1":
        allow_old_tls(ctx)
    elif tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif tls_max == "1.3":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def make_cert(directory, cn="localhost",
              san="DNS:localhost,IP:127.0.0.1", days=2):
    """For tests: a self-signed certificate (its own CA) and its key,
    made with openssl(1) in directory.  Returns (cert_path, key_path)."""
    cert = os.path.join(directory, cn + ".crt")
    key = os.path.join(directory, cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", str(days), "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san, "-keyout", key,
                    "-out", cert], check=True, capture_output=True,
                   timeout=120)
    return cert, key


def make_server(host="127.0.0.1", port=0, verbose=False, tls_cert=None,
                tls_key=None, tls_max=None, **state_args):
    """Bind a server (not yet serving).  state_args go to State(); with
    tls_cert and tls_key it serves HTTPS (tls_max: see --tls-max)."""
    state_args.setdefault("api_key", os.environ.get("MIXPEEK_SERVER_KEY",
                                                    DEFAULT_KEY))
    tls = tls_context(tls_cert, tls_key, tls_max) if tls_cert else None
    return Server((host, port), State(**state_args), verbose, tls)


def serve_in_thread(**kwargs):
    """Start a server in a daemon thread; returns it (call .stop())."""
    srv = make_server(**kwargs)
    t = threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    return srv


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Mixpeek-compatible test server for mixpeekfs. "
                    "API key: env MIXPEEK_SERVER_KEY (default %s)."
                    % DEFAULT_KEY)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--weird", action="store_true")
    ap.add_argument("--extra-keys", action="store_true")
    ap.add_argument("--no-timestamps", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-max", choices=TLS_VERSIONS)
    ap.add_argument("--rate-per-minute", type=int, default=0)
    ap.add_argument("--burst", type=int)
    ap.add_argument("--max-in-flight", type=int, default=0)
    ap.add_argument("--no-ratelimit-headers", action="store_true")
    args = ap.parse_args(argv)
    if args.count < 0:
        ap.error("--count must be >= 0")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.tls_max and not args.tls_cert:
        ap.error("--tls-max needs --tls-cert and --tls-key")
    if args.rate_per_minute < 0:
        ap.error("--rate-per-minute must be >= 0")
    if args.burst is not None:
        if args.rate_per_minute == 0:
            ap.error("--burst needs --rate-per-minute N > 0")
        if args.burst < 1:
            ap.error("--burst must be >= 1")
    if args.max_in_flight < 0:
        ap.error("--max-in-flight must be >= 0")

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    srv = make_server(host=args.host, port=args.port, verbose=args.verbose,
                      count=args.count, seed=args.seed, weird=args.weird,
                      timestamps=not args.no_timestamps,
                      extra_keys=args.extra_keys,
                      latency_ms=args.latency_ms, tls_cert=args.tls_cert,
                      tls_key=args.tls_key, tls_max=args.tls_max,
                      rate_per_minute=args.rate_per_minute,
                      burst=args.burst, max_in_flight=args.max_in_flight,
                      ratelimit_headers=not args.no_ratelimit_headers)
    host, port = srv.server_address[:2]
    if args.port_file:
        write_port_file(args.port_file, port)
    print("listening on %s:%d" % (host, port), flush=True)
    t = threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    while not stop.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
