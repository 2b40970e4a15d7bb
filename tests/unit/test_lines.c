// SPDX-License-Identifier: MIT
/*
 * A task as a line of .jsonl or .tsv (lines.c), json_line (json_text.c)
 * and text_escape_buf (text.c).
 */
#include <string.h>

#include "buf.h"
#include "check.h"
#include "json.h"
#include "lines.h"
#include "text.h"

static void check_line(const char *json, size_t len, const char *want)
{
	struct buf b = BUF_INIT(1 << 20);

	CHECK(json_line(json, len, &b) == 0);
	CHECK(b.len == strlen(want));
	CHECK_STR(buf_str(&b), want);
	buf_release(&b);
}

static void test_json_line(void)
{
	/* compact bytes stay as they are, escapes and numbers too */
	check_line("{\"a\":1E+2,\"b\":\"x\\ty\\u00e9\"}", 27,
		   "{\"a\":1E+2,\"b\":\"x\\ty\\u00e9\"}\n");
	/* whitespace between tokens goes, inside strings it stays */
	check_line(" {\n\t\"a\" : [1, 2],\r\n\"b\":\"s p\"}\n", 32,
		   "{\"a\":[1,2],\"b\":\"s p\"}\n");
	/* raw control bytes in a string (cJSON takes them) are escaped */
	check_line("{\"a\":\"l1\nl2\tx\x01\"}", 17,
		   "{\"a\":\"l1\\u000al2\\u0009x\\u0001\"}\n");
	/* a \u without four hex digits: \u0000, as cJSON reads it */
	check_line("{\"a\":\"\\uzzzzy\"}", 15, "{\"a\":\"\\u0000y\"}\n");
	/* a BOM is left out, as cJSON skips it */
	check_line("\xEF\xBB\xBF{}", 5, "{}\n");
	check_line("", 0, "\n");
	/* the first value only, as cJSON reads it */
	check_line("\"\"[1,\"x", 7, "\"\"\n");
	check_line("{} {", 4, "{}\n");
	check_line("false{\"a", 8, "false\n");
	{
		struct buf b = BUF_INIT(64);

		CHECK(json_line("{\"a\":\"cut", 9, &b) == -EIO);
		buf_release(&b);
	}
}

static void test_escape_buf(void)
{
	struct buf b = BUF_INIT(64);

	CHECK(text_escape_buf(&b,
			      "a\tb\nc\\d\re\x01\x7f"
			      "f",
			      12) == 0);
	CHECK_STR(buf_str(&b), "a\\tb\\nc\\\\d\\re\\x01\\x7ff");
	buf_release(&b);
	CHECK(text_escape_buf(&b, "n\0l", 3) == 0);
	CHECK(b.len == 6 && !memcmp(b.data, "n\\x00l", 6));
	buf_release(&b);
	CHECK(text_escape_buf(&b, "", 0) == 0);
	CHECK(b.len == 0);
	/* the cap holds */
	b.max = 4;
	CHECK(text_escape_buf(&b, "\n\n\n", 3) == -EFBIG);
	buf_release(&b);
}

static void check_tsv(const char *json, const char *want_error)
{
	struct buf b = BUF_INIT(1 << 20), want = BUF_INIT(1 << 20);

	CHECK(lines_tsv("id\t1", "ty", "FAILED", json, strlen(json), &b) == 0);
	buf_printf(&want, "id\\t1\tty\tFAILED\t%s\n", want_error);
	CHECK_STR(buf_str(&b), buf_str(&want));
	buf_release(&b);
	buf_release(&want);
}

static void test_tsv(void)
{
	struct buf b = BUF_INIT(64);

	CHECK_STR(LINES_TSV_HEADER, "task_id\ttask_type\tstatus\terror\n");
	/* error, else error_message, else additional_data.error */
	check_tsv("{\"error\":\"e1\",\"error_message\":\"e2\","
		  "\"additional_data\":{\"error\":\"e3\"}}",
		  "e1");
	check_tsv("{\"error\":null,\"error_message\":\"e2\","
		  "\"additional_data\":{\"error\":\"e3\"}}",
		  "e2");
	check_tsv("{\"error\":\"\",\"additional_data\":{\"error\":\"e3\"}}",
		  "e3");
	check_tsv("{\"error\":null,\"additional_data\":null}", "");
	check_tsv("{}", "");
	/* as cat shows it: a number's text, an array a line each */
	check_tsv("{\"error\":4.50}", "4.50");
	check_tsv("{\"error\":[\"a\",\"b\"]}", "a\\nb");
	check_tsv("{\"error\":{\"code\":1},\"error_message\":\"m\"}", "m");
	/* escapes: decoded, then escaped for the table */
	check_tsv("{\"error\":\"t\\tn\\nb\\\\ q\\\" u\\u0001 \\u00e9\"}",
		  "t\\tn\\nb\\\\ q\" u\\x01 \xc3\xa9");
	check_tsv("{\"error\":\"nul\\u0000end\"}", "nul\\x00end");
	CHECK(lines_tsv("i", "t", "s", "{\"error\":", 9, &b) == -EIO);
	buf_release(&b);
	CHECK(lines_jsonl("{\"a\" : 1}", 9, &b) == 0);
	CHECK_STR(buf_str(&b), "{\"a\":1}\n");
	buf_release(&b);
}

int main(void)
{
	test_json_line();
	test_escape_buf();
	test_tsv();
	return check_done();
}
