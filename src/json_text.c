// SPDX-License-Identifier: MIT
/*
 * json_text: JSON as text, without parsing it: a scanner that steps over
 * tokens as cJSON reads them (json_i.h, for json.c too), the
 * pretty-printer that copies every token as written, and the check that
 * a body is one whole object. No cJSON value here, only its nesting
 * limit.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "json_i.h"
#include "names.h"

const char *json_skip_ws(const char *p, const char *end)
{
	/* as cJSON: any control byte or space between tokens */
	while (p < end && (unsigned char)*p <= 0x20)
		p++;
	return p;
}

/* Where the value of a whole document starts: past a UTF-8 BOM, as cJSON. */
const char *json_doc_start(const char *p, const char *end)
{
	if (end - p >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	return json_skip_ws(p, end);
}

/* Just past the string whose opening quote is at p. */
const char *json_string_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Just past the value that starts at p. */
const char *json_value_end(const char *p, const char *end)
{
	int depth = 0;

	while (p < end) {
		char c = *p;

		if (c == '"') {
			p = json_string_end(p, end);
			if (!p || depth == 0)
				return p;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return p;
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 &&
			   (c == ',' || (unsigned char)c <= 0x20)) {
			return p;
		}
		p++;
	}
	return depth == 0 ? p : NULL;
}

/* Just past the number or literal that starts at p. */
const char *json_token_end(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p > 0x20 && !strchr(",:[]{}\"", *p))
		p++;
	return p;
}

long json_hex4(const char *x)
{
	long v = 0;
	int i, d;

	for (i = 0; i < 4; i++) {
		d = tree_hexval(x[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

bool json_is_hex4(const char *x)
{
	return json_hex4(x) >= 0;
}

/*
 * The bytes cJSON decodes as one at p, in a string literal whose closing
 * quote is at q: a byte, an escape, or \u and the four bytes after it,
 * whatever they are. (With a broken \u this need not end where the
 * escapes that found q end.)
 */
size_t json_unit_len(const char *p, const char *q)
{
	if (*p != '\\')
		return 1;
	return p[1] == 'u' && q - p >= 6 ? 6 : 2;
}

/* A new line, then two spaces a level for depth levels (jq's layout). */
static int add_indent(struct buf *out, size_t depth)
{
	static const char spaces[] = "                                ";
	int res = buf_addch(out, '\n');

	depth *= 2;
	while (depth && !res) {
		size_t k = depth < sizeof(spaces) - 1 ? depth :
							sizeof(spaces) - 1;

		res = buf_add(out, spaces, k);
		depth -= k;
	}
	return res;
}

/*
 * A string literal as written, but for what cJSON takes and JSON does
 * not: a raw control byte, or a quote left bare by a broken \u, becomes
 * \u00XX, and a \u without four hex digits \u0000 (as cJSON reads it).
 */
/* Whether the unit of k bytes at p is JSON as it stands. */
static bool unit_ok(const char *p, size_t k)
{
	return k == 6 ? json_is_hex4(p + 2) :
			k == 2 || ((unsigned char)*p >= 0x20 && *p != '"');
}

/* Whether the string literal [p, e) needs nothing of add_string. */
static bool string_ok(const char *p, const char *e)
{
	const char *q = e - 1;
	size_t k;

	for (p++; p < q; p += k)
		if (!unit_ok(p, k = json_unit_len(p, q)))
			return false;
	return p == q;
}

static int add_string(struct buf *out, const char *p, const char *e)
{
	const char *q = e - 1, *run = p; /* q: the closing quote */
	int res = 0;
	size_t k;

	for (p++; p < q && !res; p += k) {
		k = json_unit_len(p, q);
		if (unit_ok(p, k))
			continue;
		res = buf_add(out, run, (size_t)(p - run));
		if (!res)
			res = buf_printf(out, "\\u%04x",
					 k == 6 ? 0 : (unsigned char)*p);
		run = p + k;
	}
	/* p is past q when the last escape took the quote as its byte */
	res = res ? res : buf_add(out, run, (size_t)(p - run));
	return res ? res : buf_addch(out, '"');
}

/*
 * jq's layout (two spaces a level, a member or an element a line, "key":
 * value, {} and [] when empty), each token copied as the API wrote it.
 */
int json_pretty(const char *json, size_t len, struct buf *out)
{
	const char *end = json + len, *p = json_doc_start(json, end), *e, *n;
	size_t depth = 0;
	int res;

	do {
		p = json_skip_ws(p, end);
		if (p >= end)
			return -EIO;
		e = p + 1;
		if (*p == '{' || *p == '[') {
			n = json_skip_ws(e, end);
			if (n < end && *n == (*p == '{' ? '}' : ']')) {
				/* empty: as one token */
				res = buf_addstr(out, *p == '{' ? "{}" : "[]");
				e = n + 1;
			} else if (depth == CJSON_NESTING_LIMIT) {
				return -EIO;
			} else {
				res = buf_addch(out, *p);
				res = res ? res : add_indent(out, ++depth);
			}
		} else if (strchr("}],:", *p) && !depth) {
			return -EIO;
		} else if (*p == '}' || *p == ']') {
			res = add_indent(out, --depth);
			res = res ? res : buf_addch(out, *p);
		} else if (*p == ',') {
			res = buf_addch(out, ',');
			res = res ? res : add_indent(out, depth);
		} else if (*p == ':') {
			res = buf_addstr(out, ": ");
		} else {
			e = *p == '"' ? json_string_end(p, end) :
					json_token_end(p, end);
			if (!e)
				return -EIO;
			res = *p == '"' ? add_string(out, p, e) :
					  buf_add(out, p, (size_t)(e - p));
		}
		if (res)
			return res;
		p = e;
	} while (depth);
	return buf_addch(out, '\n');
}

int json_line(const char *json, size_t len, struct buf *out)
{
	const char *end = json + len, *p = json_doc_start(json, end), *e;
	const char *run = p;
	int res = 0;

	/* the first value, as cJSON reads it; nothing after it */
	if (p < end)
		end = *p == '{' || *p == '[' ? json_value_end(p, end) :
			*p == '"'	     ? json_string_end(p, end) :
					       json_token_end(p, end);
	if (!end)
		return -EIO;
	while (p < end && !res) {
		if ((unsigned char)*p <= 0x20) {
			res = buf_add(out, run, (size_t)(p - run));
			p = run = json_skip_ws(p, end);
			continue;
		}
		if (*p != '"') {
			p++;
			continue;
		}
		e = json_string_end(p, end);
		if (!e)
			return -EIO;
		if (!string_ok(p, e)) {
			res = buf_add(out, run, (size_t)(p - run));
			res = res ? res : add_string(out, p, e);
			run = e;
		}
		p = e;
	}
	res = res ? res : buf_add(out, run, (size_t)(p - run));
	return res ? res : buf_addch(out, '\n');
}

bool json_whole_object(const char *body, size_t len)
{
	const char *end = body + len, *p = body, *e;

	if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3; /* a BOM, as cJSON allows */
	p = json_skip_ws(p, end);
	if (p >= end || *p != '{')
		return false;
	e = json_value_end(p, end);
	return e && json_skip_ws(e, end) == end;
}
