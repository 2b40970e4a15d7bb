/* SPDX-License-Identifier: MIT */
/*
 * json: every use of cJSON. Parses list pages and single tasks into task
 * records and a task's JSON into a tree (json.c), builds list request
 * bodies (json_body.c), and works on JSON as text without parsing it: pretty-printing and the
 * whole-object check (json_text.c). No cJSON value ever leaves this
 * module. All but json_init are thread-safe; none does I/O.
 */
#ifndef MIXPEEKFS_JSON_H
#define MIXPEEKFS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "listreq.h"
#include "task.h"
#include "tree.h"

struct page {
	struct task **tasks; /* owned references */
	size_t n;
	char *next_cursor; /* malloc'd, or NULL on the last page */
	long total;	   /* -1 when the server did not say */
	size_t skipped;	   /* results dropped as malformed */
};

void page_release(struct page *p);

/*
 * Parse a ListTasksResponse. A result that is not an object with a
 * non-empty string task_id is skipped (and counted); the rest are kept.
 * -EIO when the body is not JSON or has no results array.
 */
int json_parse_page(const char *body, size_t len, struct page *out);

/* Parse one TaskResponse into a new record (*out). -EIO if malformed. */
int json_parse_task(const char *body, size_t len, struct task **out);

/*
 * Build the generic tree of a task's JSON (the caller owns *root): each
 * number's text exactly as in json, each string's bytes, NULs included.
 * -EIO if malformed. Thread-safe.
 */
int json_to_tree(const char *json, size_t len, struct tnode **root);

/*
 * Append json pretty-printed (jq's layout) and a newline to out,
 * without parsing it: every token is copied as written, so numbers and
 * escapes stay the API's. json is JSON cJSON took (a task's bytes are);
 * -EIO when it is not even balanced, with part of it appended.
 * Thread-safe.
 */
int json_pretty(const char *json, size_t len, struct buf *out);

/*
 * Append json on one line and a newline to out: every token as written,
 * no whitespace between them, and a raw control byte in a string as
 * \u00XX (as json_pretty), so the line holds no newline of its own and
 * parses back to what json says. The same input conditions as
 * json_pretty. Thread-safe.
 */
int json_line(const char *json, size_t len, struct buf *out);

/*
 * The ListTasksRequest body for b, compact, with keys in a fixed order so
 * equal requests give equal bytes (the listing cache keys on it).
 */
int json_list_body(const struct list_body *b, struct buf *out);

/*
 * The human message of an API error body (either error envelope, or
 * FastAPI's detail list), at most size - 1 bytes. Empty if none.
 */
void json_error_message(const char *body, size_t len, char *msg, size_t size);
/*
 * details.KEY of an error envelope as text (a string, or a number), at
 * most size - 1 bytes; empty if there is none.
 */
void json_error_detail(const char *body, size_t len, const char *key, char *out,
		       size_t size);

/* true when text is a JSON scalar (number, true, false, null). */
bool json_is_literal(const char *text);

/* Once, before any thread starts: cJSON's allocator (see json.c). */
void json_init(void);

/* cJSON's version, for .mixpeekfs/version. */
const char *json_version(void);

/* The JSON string literal for s, appended to out. */
int json_quote(const char *s, struct buf *out);

/*
 * Whether body is one whole JSON object (balanced, nothing after it): a
 * cheap check, without parsing, that a 200 was not cut or garbled.
 */
bool json_whole_object(const char *body, size_t len);

#endif
