// SPDX-License-Identifier: MIT
/* Request building, the paging plan and the status-to-errno mapping. */
#include <errno.h>
#include <stdlib.h>

#include "api.h"
#include "../../src/api_i.h"
#include "check.h"
#include "http.h"

static void test_paths(void)
{
	struct buf b = BUF_INIT(4096);

	CHECK(api_list_path(1000, 0, NULL, true, &b) == 0);
	CHECK_STR(buf_str(&b), "/v1/tasks/list?limit=1000&include_total=true");
	buf_release(&b);
	CHECK(api_list_path(100, 300, NULL, false, &b) == 0);
	CHECK_STR(buf_str(&b), "/v1/tasks/list?limit=100&offset=300");
	buf_release(&b);
	CHECK(api_list_path(100, 300, "a+b/c=", false, &b) == 0);
	CHECK_STR(buf_str(&b), "/v1/tasks/list?limit=100&cursor=a%2Bb%2Fc%3D");
	buf_release(&b);
}

static void test_plan(void)
{
	long offs[64];

	/* one page: nothing more */
	CHECK(api_plan_offsets(1000, 1000, offs, 64) == 0);
	CHECK(api_plan_offsets(999, 1000, offs, 64) == 0);
	/* 2,500 tasks in pages of 1000: offsets 1000 and 2000 */
	CHECK(api_plan_offsets(2500, 1000, offs, 64) == 2);
	CHECK(offs[0] == 1000 && offs[1] == 2000);
	CHECK(!api_plan_needs_cursor(2500, 1000));
	/* 20,000 tasks: offsets up to the cap (10000), then the cursor */
	CHECK(api_plan_offsets(20000, 1000, offs, 64) == 10);
	CHECK(offs[9] == 10000);
	CHECK(api_plan_needs_cursor(20000, 1000));
	CHECK(!api_plan_needs_cursor(11000, 1000));
	CHECK(api_plan_needs_cursor(11001, 1000));
	/* page size that does not divide the cap */
	CHECK(api_plan_offsets(50000, 300, offs, 64) == 33);
	CHECK(offs[32] == 9900);
	CHECK(api_plan_needs_cursor(10201, 300));
	CHECK(!api_plan_needs_cursor(10200, 300));
	/* max bounds what is written, not what is counted */
	CHECK(api_plan_offsets(5000, 100, offs, 3) == 49);
	CHECK(offs[2] == 300);
}

static void test_errno(void)
{
	CHECK(http_status_errno(200) == 0);
	CHECK(http_status_errno(204) == 0);
	CHECK(http_status_errno(401) == -EACCES);
	CHECK(http_status_errno(403) == -EACCES);
	CHECK(http_status_errno(404) == -ENOENT);
	CHECK(http_status_errno(422) == -EINVAL);
	CHECK(http_status_errno(429) == -EIO);
	CHECK(http_status_errno(500) == -EIO);
	CHECK(http_status_errno(503) == -EIO);
}

static void test_escape(void)
{
	char *e;

	e = http_escape("..");
	CHECK_STR(e, "%2E%2E");
	free(e);
	e = http_escape("task/evil id.1");
	CHECK_STR(e, "task%2Fevil%20id%2E1");
	free(e);
}

/* What ends a listing that would never end. */
static void test_guard(void)
{
	struct guard g;

	api_init(100, 8);
	guard_init(&g, 1000); /* a tenth more: 1100 */
	CHECK(guard_count(&g, 1100) == 0 && guard_count(&g, 1101) == -EIO);
	CHECK(guard_cursor(&g, "A") == 0 && guard_cursor(&g, "B") == 0);
	CHECK(guard_cursor(&g, "A") == -EIO); /* A, B, A */
	guard_release(&g);
	guard_init(&g, 50); /* small: a page more */
	CHECK(guard_count(&g, 150) == 0 && guard_count(&g, 151) == -EIO);
	guard_release(&g);
	guard_init(&g, -1); /* no total: no bound here (the store's) */
	CHECK(guard_count(&g, 1L << 40) == 0);
	guard_release(&g);
}

int main(void)
{
	test_escape();
	test_paths();
	test_plan();
	test_errno();
	test_guard();
	return check_done();
}
