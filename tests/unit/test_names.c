// SPDX-License-Identifier: MIT
/* Names: escaping into file names and back, percent-decoding. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "names.h"

static void test_escape(void)
{
	char out[TREE_NAME_MAX + 1], longname[400], *raw;
	int i;

	tree_name_escape("plain", out);
	CHECK_STR(out, "plain");
	tree_name_escape("a/b%c", out);
	CHECK_STR(out, "a%2Fb%25c");
	CHECK(tree_name_unescape(out, &raw) == 0);
	CHECK_STR(raw, "a/b%c");
	free(raw);
	tree_name_escape("", out);
	CHECK_STR(out, "%00");
	CHECK(tree_name_unescape(out, &raw) == 0);
	CHECK_STR(raw, "");
	free(raw);
	tree_name_escape("..", out);
	CHECK_STR(out, "%2E%2E");
	/* the names of the hidden files: their dot escaped */
	tree_name_escape(".wait", out);
	CHECK_STR(out, "%2Ewait");
	CHECK(tree_name_unescape(out, &raw) == 0);
	CHECK_STR(raw, ".wait");
	free(raw);
	tree_name_escape(".jsonl", out);
	CHECK_STR(out, "%2Ejsonl");
	tree_name_escape(".tsv", out);
	CHECK_STR(out, "%2Etsv");
	tree_name_escape(".refresh", out);
	CHECK_STR(out, "%2Erefresh");
	tree_name_escape(".other", out);
	CHECK_STR(out, ".other");
	CHECK(tree_name_unescape("%2", &raw) == -EINVAL);
	CHECK(tree_name_unescape("%zz", &raw) == -EINVAL);
	CHECK(tree_name_unescape("a%00b", &raw) == -EINVAL);
	/* a 300-byte name: 200 bytes, %~, 16 hex digits */
	for (i = 0; i < 300; i++)
		longname[i] = 'x';
	longname[300] = '\0';
	tree_name_escape(longname, out);
	CHECK(strlen(out) == 218);
	CHECK(!strncmp(out + 200, "%~", 2));
	CHECK(tree_name_unescape(out, &raw) == -EINVAL);
	/* never split an escape: '/' at byte 199 */
	longname[199] = '/';
	tree_name_escape(longname, out);
	CHECK(!strncmp(out + 199, "%~", 2));
	CHECK(strlen(out) <= TREE_NAME_MAX);
	/* never split a UTF-8 sequence: é (2 bytes) across byte 200 */
	memset(longname, 'y', 300);
	longname[199] = (char)0xc3;
	longname[200] = (char)0xa9;
	tree_name_escape(longname, out);
	CHECK(!strncmp(out + 199, "%~", 2));
}

static void test_decode(void)
{
	char *out;

	CHECK(tree_hexval('0') == 0 && tree_hexval('f') == 15 &&
	      tree_hexval('F') == 15 && tree_hexval('g') == -1);
	CHECK(tree_percent_decode("a%7Cb%2c", 8, &out) == 0);
	CHECK_STR(out, "a|b,");
	free(out);
	/* only the first len bytes */
	CHECK(tree_percent_decode("ab%41", 2, &out) == 0);
	CHECK_STR(out, "ab");
	free(out);
	CHECK(tree_percent_decode("%4", 2, &out) == -EINVAL);
	CHECK(tree_percent_decode("x%00", 4, &out) == -EINVAL);
}

int main(void)
{
	test_escape();
	test_decode();
	return check_done();
}
