// SPDX-License-Identifier: MIT
/* Page and task parsing, request bodies, error messages. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "json.h"

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
	CHECK_STR(pg.tasks[1]->status, "");	/* wrong type: kept, empty */
	page_release(&pg);

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
		"  {\"task_id\": \"a\", \"s\": \"]}\\\" ,[{\", \"n\": [1, {\"x\": []}]} ,"
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

	buf_addstr(&b, "{\"results\":[{\"task_id\":\"a\"},"
		   "{\"task_id\":\"d\",\"x\":");
	for (i = 0; i < 1200; i++)
		buf_addstr(&b, "{\"k\":");
	buf_addch(&b, '1');
	for (i = 0; i < 1200; i++)
		buf_addch(&b, '}');
	buf_addstr(&b, "},{\"task_id\":\"b\"}],\"pagination\":{\"total\":3,"
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

	CHECK(json_parse_task("{\"task_id\":\"z\",\"status\":\"PENDING\"}",
			      35, &t) == 0);
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
	      "\"created_at\":\"2026-11-01T00:00:00Z\"", &c, &f);
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
	CHECK_STR(buf_str(&b), "{\"status\":\"FAILED\",\"task_type\":"
		  "\"thumbnail\",\"sort\":{\"field\":\"created_at\","
		  "\"direction\":\"desc\"},\"search\":\"oom\"}");
	buf_release(&b);
	memset(&q, 0, sizeof(q));
	q.conds = conds;
	q.nconds = 4;
	CHECK(json_list_body(&q, &b) == 0);
	CHECK_STR(buf_str(&b), "{\"filters\":{\"AND\":[{\"field\":"
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
	static const char env[] = "{\"success\":false,\"status\":401,"
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

int main(void)
{
	test_page();
	test_raw_slices();
	test_too_deep();
	test_task();
	test_times();
	test_body();
	test_errors();
	return check_done();
}
