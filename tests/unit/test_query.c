// SPDX-License-Identifier: MIT
/* Query folder names: parsing, typing, errors and the canonical body. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "query.h"

/* The list body of the components names[0..n), in that order. */
static char *body_of(const char *const *names, size_t n, const char *status)
{
	struct query q = { 0 };
	struct json_cond conds[32];
	struct list_body b;
	struct buf out = BUF_INIT(1 << 20);
	char err[256];
	size_t i;

	for (i = 0; i < n; i++)
		if (query_add(&q, names[i], err, sizeof(err))) {
			query_release(&q);
			return NULL;
		}
	query_body(&q, status, NULL, conds, &b);
	json_list_body(&b, &out);
	query_release(&q);
	return buf_detach(&out, NULL);
}

static void check_body(const char *name, const char *want)
{
	const char *names[] = { name };
	char *got = body_of(names, 1, NULL);

	CHECK_STR(got, want);
	free(got);
}

static void check_error(const char *name, int want, const char *word)
{
	struct query q = { 0 };
	char err[256];
	int res = query_add(&q, name, err, sizeof(err));

	CHECK(res == want);
	if (word)
		CHECK(strstr(err, word) != NULL);
	query_release(&q);
}

int main(void)
{
	static const char *const ab[] = { "a=1", "b=x" };
	static const char *const ba[] = { "b=x", "a=1", "a=1" };
	char *x, *y;

	check_body("status=FAILED",
		   "{\"filters\":{\"AND\":[{\"field\":"
		   "\"status\",\"operator\":\"eq\",\"value\":\"FAILED\"}]}}");
	check_body("additional_data.object_count:gte:1000",
		   "{\"filters\":{\"AND\":[{\"field\":"
		   "\"additional_data.object_count\",\"operator\":\"gte\","
		   "\"value\":1000}]}}");
	/* numbers as written: no double in between */
	check_body("n=9007199254740993",
		   "{\"filters\":{\"AND\":[{\"field\":\"n\","
		   "\"operator\":\"eq\",\"value\":9007199254740993}]}}");
	check_body("n:in:12345678901234567890,1E+2,-0.0",
		   "{\"filters\":{\"AND\":[{\"field\":\"n\",\"operator\":"
		   "\"in\",\"value\":[12345678901234567890,1E+2,-0.0]}]}}");
	check_error("n=1e400", -EINVAL, "too large");
	check_error("n:in:1,-1e999", -EINVAL, "too large");
	check_body("n!=null",
		   "{\"filters\":{\"AND\":[{\"field\":\"n\","
		   "\"operator\":\"ne\",\"value\":null}]}}");
	check_body("n=\"42\"",
		   "{\"filters\":{\"AND\":[{\"field\":\"n\","
		   "\"operator\":\"eq\",\"value\":\"42\"}]}}");
	check_body("d:contains:42",
		   "{\"filters\":{\"AND\":[{\"field\":"
		   "\"d\",\"operator\":\"contains\",\"value\":\"42\"}]}}");
	check_body("not:status:in:COMPLETED,CANCELED,1.5",
		   "{\"filters\":{\"NOT\":[{\"field\":\"status\",\"operator\":"
		   "\"in\",\"value\":[\"COMPLETED\",\"CANCELED\",1.5]}]}}");
	check_body("status=FAILED|status=CANCELED",
		   "{\"filters\":{\"AND\":[{\"OR\":[{\"field\":\"status\","
		   "\"operator\":\"eq\",\"value\":\"CANCELED\"},{\"field\":"
		   "\"status\",\"operator\":\"eq\",\"value\":\"FAILED\"}]}]}}");
	check_body("a=x%2Fy%7Cz%25",
		   "{\"filters\":{\"AND\":[{\"field\":"
		   "\"a\",\"operator\":\"eq\",\"value\":\"x/y|z%\"}]}}");
	check_body("e:exists:false",
		   "{\"filters\":{\"AND\":[{\"field\":"
		   "\"e\",\"operator\":\"exists\",\"value\":false}]}}");
	check_body("@search=oom%20killed", "{\"search\":\"oom killed\"}");
	check_body("@sort=-created_at",
		   "{\"sort\":{\"field\":\"created_at\","
		   "\"direction\":\"desc\"}}");
	check_body("@case=sensitive",
		   "{\"filters\":{\"case_sensitive\":"
		   "true}}");
	/* the same components in any order (and repeated): one body */
	x = body_of(ab, 2, "FAILED");
	y = body_of(ba, 3, "FAILED");
	CHECK(x && y && !strcmp(x, y));
	CHECK(x && strstr(x, "\"status\":\"FAILED\"") != NULL);
	free(x);
	free(y);
	/* task ids are not components */
	check_error("task_abc123", -ENOENT, NULL);
	check_error("550e8400-e29b-41d4-a716-446655440000", -ENOENT, NULL);
	check_error("a b=1", -ENOENT, NULL);
	/* malformed components */
	check_error("status:bogus:1", -EINVAL, "unknown operator");
	check_error("e:exists:maybe", -EINVAL, "true or false");
	check_error("a=%zz", -EINVAL, "percent");
	check_error("not:task_abc", -EINVAL, "not a condition");
	check_error("not:a=1|b=2", -EINVAL, "OR group");
	check_error("@limit=0", -EINVAL, "@limit");
	check_error("@limit=1001", -EINVAL, "@limit");
	check_error("@sort=-", -EINVAL, "@sort");
	check_error("@frobnicate=1", -EINVAL, "unknown setting");
	{
		struct query q = { 0 };
		char err[64];

		CHECK(query_add(&q, "@limit=20", err, sizeof(err)) == 0);
		CHECK(q.limit == 20);
		query_release(&q);
	}
	return check_done();
}
