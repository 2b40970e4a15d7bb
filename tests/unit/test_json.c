// SPDX-License-Identifier: MIT
/* Page and task parsing, request bodies, error messages. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "json.h"
#include "task.h"
#include "tree.h"

static void test_page(void)
{
	static const char body[] =
		"{\"results\":[{\"task_id\":\"a\",\"status\":\"FAILED\","
		"\"task_type\":\"thumbnail\",\"x\":1},{\"status\":\"X\"},"
		"{\"task_id\":\"b\",\"status\":7,\"task_type\":null},3],"
		"\"pagination\":{\"total\":120,\"next_cursor\":\"c2\"}}";
	struct page pg;

	CHECK(json_parse_page(body, strlen(body), &pg) == 0);
	CHECK(pg.n == 2);
	CHECK(pg.skipped == 2);
	CHECK(pg.total == 120);
	CHECK_STR(pg.next_cursor, "c2");
	CHECK_STR(pg.tasks[0]->id, "a");
	CHECK_STR(pg.tasks[0]->status, "FAILED");
	CHECK_STR(pg.tasks[0]->type, "thumbnail");
	{
		struct buf j = BUF_INIT(1 << 20);

		CHECK(task_json(pg.tasks[0], &j) == 0);
		CHECK(strstr(buf_str(&j), "\"x\":1") != NULL);
		CHECK(j.len == pg.tasks[0]->json_len);
		buf_release(&j);
	}
	CHECK_STR(pg.tasks[1]->status, ""); /* wrong type: kept, empty */
	page_release(&pg);

	/* a key twice at the top, or a NUL in the id: skipped */
	{
		static const char twice[] =
			"{\"results\":[{\"task_id\":\"a\",\"status\":\"X\","
			"\"status\":\"Y\"},{\"task_id\":\"b\\u0000c\"},"
			"{\"task_id\":\"d\",\"o\":{\"k\":1,\"k\":2}},"
			"{\"task_id\":\"e\\u00zz\"},"
			"{\"task_id\":\"f\\\\u0000\"}]}";
		struct task *t;

		CHECK(json_parse_page(twice, strlen(twice), &pg) == 0);
		/* e's \\u00zz is a NUL to cJSON; f's \\\\ is a backslash */
		CHECK(pg.n == 2 && pg.skipped == 3);
		CHECK(pg.n == 2 && !strcmp(pg.tasks[0]->id, "d"));
		CHECK(pg.n == 2 && !strcmp(pg.tasks[1]->id, "f\\u0000"));
		page_release(&pg);
		CHECK(json_parse_task("{\"task_id\":\"a\",\"task_id\":\"b\"}",
				      32, &t) == -EIO);
	}
	/* lone surrogates (schema-valid, refused by cJSON 1.7.15): shown,
	 * the raw text kept for task.json; an escaped backslash and a pair
	 * are left alone */
	{
		static const char lone[] =
			"{\"results\":[{\"task_id\":\"s\",\"status\":\"X\","
			"\"e\":\"\\ud800 \\\\ud800 \\ud83d\\ude00 \\udc00\"}]}";
		struct buf j = BUF_INIT(1 << 20);
		struct tnode *root = NULL;

		CHECK(json_parse_page(lone, strlen(lone), &pg) == 0);
		CHECK(pg.n == 1 && pg.skipped == 0);
		CHECK(pg.n == 1 && !task_json(pg.tasks[0], &j));
		CHECK(strstr(buf_str(&j), "\\ud800 \\\\ud800") != NULL);
		CHECK(json_to_tree(lone, strlen(lone), &root) == 0);
		tnode_free(root);
		buf_release(&j);
		page_release(&pg);
	}
	CHECK(json_parse_page("<html>", 6, &pg) == -EIO);
	CHECK(json_parse_page("{\"results\":{}}", 14, &pg) == -EIO);
	CHECK(json_parse_page("{\"results\":[", 12, &pg) == -EIO);
	CHECK(json_parse_page("{\"results\":[],\"pagination\":null}", 33,
			      &pg) == 0);
	CHECK(pg.n == 0 && pg.total == -1 && !pg.next_cursor);
	page_release(&pg);
}

/* Each task is kept as the bytes the API sent for it, less whitespace. */
static void test_raw_slices(void)
{
	static const char body[] =
		" { \"pagination\" : {\"results\": [1]}, \"results\" : [\n"
		"  {\"task_id\": \"a\", \"s\": \"]}\\\" ,[{\", \"n\": [1, "
		"{\"x\": []}]} ,"
		"{\"task_id\":\"b\",\"u\":\"\\u00e9\"}\n]}";
	static const char *const want[] = {
		"{\"task_id\":\"a\",\"s\":\"]}\\\" ,[{\",\"n\":[1,{\"x\":[]}]}",
		"{\"task_id\":\"b\",\"u\":\"\\u00e9\"}",
	};
	struct page pg;
	size_t i;

	CHECK(json_parse_page(body, strlen(body), &pg) == 0);
	CHECK(pg.n == 2);
	for (i = 0; i < pg.n && i < 2; i++) {
		struct buf j = BUF_INIT(1 << 20);

		CHECK(task_json(pg.tasks[i], &j) == 0);
		CHECK_STR(buf_str(&j), want[i]);
		buf_release(&j);
	}
	page_release(&pg);
}

/* Deeper than cJSON's nesting limit: that task goes, the page stays. */
static void test_too_deep(void)
{
	struct buf b = BUF_INIT(1 << 20);
	struct page pg;
	int i;

	buf_addstr(&b,
		   "{\"results\":[{\"task_id\":\"a\"},"
		   "{\"task_id\":\"d\",\"x\":");
	for (i = 0; i < 1200; i++)
		buf_addstr(&b, "{\"k\":");
	buf_addch(&b, '1');
	for (i = 0; i < 1200; i++)
		buf_addch(&b, '}');
	buf_addstr(&b,
		   "},{\"task_id\":\"b\"}],\"pagination\":{\"total\":3,"
		   "\"next_cursor\":\"n\"}}");
	CHECK(json_parse_page(b.data, b.len, &pg) == 0);
	CHECK(pg.n == 2 && pg.skipped == 1);
	CHECK(pg.n == 2 && !strcmp(pg.tasks[1]->id, "b"));
	CHECK(pg.total == 3);
	CHECK_STR(pg.next_cursor, "n");
	page_release(&pg);
	/* cut short, it is not a page at all */
	CHECK(json_parse_page(b.data, b.len / 2, &pg) == -EIO);
	buf_release(&b);
}

static void test_task(void)
{
	struct task *t;
	struct buf b = BUF_INIT(1 << 20);

	CHECK(json_parse_task("{\"task_id\":\"z\",\"status\":\"PENDING\"}", 35,
			      &t) == 0);
	CHECK_STR(t->id, "z");
	{
		struct buf j = BUF_INIT(1 << 20);

		CHECK(task_json(t, &j) == 0);
		CHECK(json_pretty(buf_str(&j), j.len, &b) == 0);
		buf_release(&j);
	}
	CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
	CHECK(strstr(buf_str(&b), "\"PENDING\"") != NULL);
	buf_release(&b);
	task_unref(t);
	CHECK(json_parse_task("{\"status\":\"PENDING\"}", 20, &t) == -EIO);
	CHECK(json_parse_task("[]", 2, &t) == -EIO);
}

/* json_pretty of [in, in + len) gives want, or -EIO when want is NULL. */
static void check_pretty(const char *in, size_t len, const char *want)
{
	struct buf b = BUF_INIT(1 << 20);

	CHECK(json_pretty(in, len, &b) == (want ? 0 : -EIO));
	if (want)
		CHECK_STR(buf_str(&b), want);
	buf_release(&b);
}

/* task.json: jq's layout, every token as the API wrote it. */
static void test_pretty(void)
{
	static const char task[] =
		"{\"a\":0.30000000000000004,\"b\":[1E+2,-0,{\"c\":0.0},[]],"
		"\"big\":9007199254740993,\"u\":18446744073709551615,"
		"\"x\":[1e400,-1.50,1e-999999999],\"s\":\"a\\u0000b\\/"
		"\\u00e9\","
		"\"e\":{},\"o\":{\"k\":{\"n\":null,\"t\":true}},\"f\":[]}";
	static const char want[] = "{\n"
				   "  \"a\": 0.30000000000000004,\n"
				   "  \"b\": [\n"
				   "    1E+2,\n"
				   "    -0,\n"
				   "    {\n"
				   "      \"c\": 0.0\n"
				   "    },\n"
				   "    []\n"
				   "  ],\n"
				   "  \"big\": 9007199254740993,\n"
				   "  \"u\": 18446744073709551615,\n"
				   "  \"x\": [\n"
				   "    1e400,\n"
				   "    -1.50,\n"
				   "    1e-999999999\n"
				   "  ],\n"
				   "  \"s\": \"a\\u0000b\\/\\u00e9\",\n"
				   "  \"e\": {},\n"
				   "  \"o\": {\n"
				   "    \"k\": {\n"
				   "      \"n\": null,\n"
				   "      \"t\": true\n"
				   "    }\n"
				   "  },\n"
				   "  \"f\": []\n"
				   "}\n";
	check_pretty(task, sizeof(task) - 1, want);
	/* pretty-printing what is pretty already changes nothing */
	check_pretty(want, sizeof(want) - 1, want);
	/*
	 * What cJSON takes and JSON does not is written as cJSON reads it:
	 * a raw control byte, a \u without four hex digits (a NUL), a quote
	 * such a \u leaves bare
	 */
	check_pretty("[\"a\tb\x01\"]", 8, "[\n  \"a\\u0009b\\u0001\"\n]\n");
	check_pretty("[\"\\uZZ00x\\u\\\"ab\\u00e9\"]", 23,
		     "[\n  \"\\u0000x\\u0000\\u00e9\"\n]\n");
	check_pretty("[\"a\\u000\\\"\",\"\\u123\\\\\"]", 22,
		     "[\n  \"a\\u0000\\u0022\",\n  \"\\u0000\\\"\"\n]\n");
	check_pretty("  7 ", 4, "7\n");
	check_pretty("{\"a\":[1,", 9, NULL);
	check_pretty("]", 1, NULL);
}

/*
 * The one task of body (a page, or a single task) keeps the text want;
 * body is released.
 */
static void check_kept(struct buf *body, bool page, const char *want)
{
	struct buf j = BUF_INIT(1 << 24);
	struct task *t = NULL;
	struct page pg = { 0 };

	if (page) {
		CHECK(json_parse_page(body->data, body->len, &pg) == 0);
		t = pg.n == 1 ? pg.tasks[0] : NULL;
	} else {
		CHECK(json_parse_task(body->data, body->len, &t) == 0);
	}
	CHECK(t && task_json(t, &j) == 0);
	CHECK(strstr(buf_str(&j), want) != NULL);
	buf_release(&j);
	if (page)
		page_release(&pg);
	else
		task_unref(t);
	buf_release(body);
}

/* The number text survives every way a task comes in. */
static void test_number_text(void)
{
	static const char nums[] =
		"\"n\":[0.30000000000000004,9007199254740993,1E+2,0.0]";
	struct buf b = BUF_INIT(1 << 24);
	int i;

	/* a task bigger than the minifier's stack buffer */
	buf_printf(&b, "{\"results\":[{\"task_id\":\"big\",%s,\"pad\":\"",
		   nums);
	for (i = 0; i < 40000; i++)
		buf_addch(&b, 'x');
	buf_addstr(&b, "\"}]}");
	check_kept(&b, true, nums);
	/* an escaped key before "results" */
	buf_printf(&b,
		   "{\"re\\u0073ult\":1,\"results\":[{\"task_id\":"
		   "\"e\",%s}]}",
		   nums);
	check_kept(&b, true, nums);
	/* a task alone, after a byte-order mark */
	buf_printf(&b, "\xEF\xBB\xBF {\"task_id\":\"m\",%s}", nums);
	check_kept(&b, false, nums);
}

/* A record's time: updated_at, else created_at, else when it was seen. */
static void stamp(const char *fields, uint32_t *changed, uint32_t *flags)
{
	char doc[256];
	struct task *t = NULL;

	snprintf(doc, sizeof(doc), "{\"task_id\":\"t\"%s}", fields);
	*changed = *flags = 0;
	if (json_parse_task(doc, strlen(doc), &t) == 0) {
		*changed = t->changed;
		*flags = t->flags;
		task_unref(t);
	}
}

static void test_times(void)
{
	uint32_t c, f, now = (uint32_t)time(NULL);

	stamp(",\"updated_at\":\"2026-11-29T18:31:43Z\","
	      "\"created_at\":\"2026-11-01T00:00:00Z\"",
	      &c, &f);
	CHECK(c == 1795977103u && (f & TASK_UPDATED_AT));
	stamp(",\"created_at\":\"2026-11-01T00:00:00Z\"", &c, &f);
	CHECK(c == 1793491200u && !(f & TASK_UPDATED_AT));
	/* fractions and offsets */
	stamp(",\"updated_at\":\"2026-11-29T20:31:43.250+02:00\"", &c, &f);
	CHECK(c == 1795977103u);
	stamp(",\"updated_at\":\"2026-11-29T13:31:43.5-05:00\"", &c, &f);
	CHECK(c == 1795977103u);
	/* not a time: the moment it was seen */
	stamp(",\"updated_at\":\"yesterday\"", &c, &f);
	CHECK(c >= now && !(f & TASK_UPDATED_AT));
	stamp(",\"updated_at\":1795977103", &c, &f);
	CHECK(c >= now);
	stamp(",\"updated_at\":\"2026-11-29T18:31:43Zjunk\"", &c, &f);
	CHECK(c >= now);
}

static void test_body(void)
{
	struct json_cond conds[] = {
		{ "additional_data.bucket_id", "eq", "\"bkt\"", false, 0 },
		{ "status", "in", "[\"COMPLETED\",\"CANCELED\"]", true, 0 },
		{ "status", "eq", "\"FAILED\"", false, 1 },
		{ "status", "eq", "\"CANCELED\"", false, 1 },
	};
	struct list_body q = { 0 };
	struct buf b = BUF_INIT(1 << 20);

	CHECK(json_list_body(&q, &b) == 0);
	CHECK_STR(buf_str(&b), "{}");
	buf_release(&b);
	q.status = "FAILED";
	q.task_type = "thumbnail";
	q.search = "oom";
	q.sort_field = "created_at";
	q.sort_desc = true;
	CHECK(json_list_body(&q, &b) == 0);
	CHECK_STR(buf_str(&b),
		  "{\"status\":\"FAILED\",\"task_type\":"
		  "\"thumbnail\",\"sort\":{\"field\":\"created_at\","
		  "\"direction\":\"desc\"},\"search\":\"oom\"}");
	buf_release(&b);
	memset(&q, 0, sizeof(q));
	q.conds = conds;
	q.nconds = 4;
	CHECK(json_list_body(&q, &b) == 0);
	CHECK_STR(buf_str(&b),
		  "{\"filters\":{\"AND\":[{\"field\":"
		  "\"additional_data.bucket_id\",\"operator\":\"eq\","
		  "\"value\":\"bkt\"},{\"OR\":[{\"field\":\"status\","
		  "\"operator\":\"eq\",\"value\":\"FAILED\"},{\"field\":"
		  "\"status\",\"operator\":\"eq\",\"value\":\"CANCELED\"}]}],"
		  "\"NOT\":[{\"field\":\"status\",\"operator\":\"in\","
		  "\"value\":[\"COMPLETED\",\"CANCELED\"]}]}}");
	buf_release(&b);
}

static void test_errors(void)
{
	static const char env[] =
		"{\"success\":false,\"status\":401,"
		"\"error\":{\"message\":\"Invalid key\",\"type\":\"U\"}}";
	static const char fastapi[] =
		"{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"bad regex\","
		"\"type\":\"value_error\"}]}";
	char msg[64];

	json_error_message(env, strlen(env), msg, sizeof(msg));
	CHECK_STR(msg, "Invalid key");
	json_error_message(fastapi, strlen(fastapi), msg, sizeof(msg));
	CHECK_STR(msg, "bad regex");
	json_error_message("oops", 4, msg, sizeof(msg));
	CHECK_STR(msg, "");
	CHECK(json_is_literal("42") && json_is_literal("-1.5e3"));
	CHECK(json_is_literal("true") && json_is_literal("null"));
	CHECK(!json_is_literal("abc") && !json_is_literal("\"x\""));
}

/* The cheap check that a 200 was not cut or garbled (retried if so). */
static void test_whole_object(void)
{
	static const char *const good[] = {
		"{}",
		" {\"results\":[1,{\"a\":\"}\"}]} \n",
		"\xef\xbb\xbf{\"a\":1}",
	};
	static const char *const bad[] = {
		"",	 "<html>oops", "{\"results\":[1,2", "{\"a\":\"}",
		"{} {}", "[1]",	       "{\"a\":1}x",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		CHECK(json_whole_object(good[i], strlen(good[i])));
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK(!json_whole_object(bad[i], strlen(bad[i])));
}

int main(void)
{
	test_whole_object();
	test_page();
	test_raw_slices();
	test_too_deep();
	test_task();
	test_pretty();
	test_number_text();
	test_times();
	test_body();
	test_errors();
	return check_done();
}
