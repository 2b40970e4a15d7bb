// SPDX-License-Identifier: MIT
/* JSON to tree, the file/folder mapping and rendering. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "tree.h"

static const char task[] =
	"{\"task_id\":\"t1\",\"status\":\"FAILED\",\"n\":42,\"f\":0.75,"
	"\"big\":1e3,\"ok\":true,\"no\":false,\"gone\":null,"
	"\"s\":\"multi\\nline \\u00e9\",\"tags\":[\"a\",1,null,true],"
	"\"empty\":[],\"objs\":[{\"x\":1},null,[2]],"
	"\"nested\":{\"a\":{\"b\":\"deep\"}},\"a/b\":1,\".\":2,\"..\":3,"
	"\"\":4,\"50%\":5,\"dup\":1,\"dup\":2}";

static char *render(const struct tnode *root, const char *path)
{
	const struct tnode *n;
	struct buf b = BUF_INIT(1 << 20);

	if (tnode_walk(root, path, &n) || tnode_render(n, &b))
		return NULL;
	return buf_detach(&b, NULL);
}

static void check_render(const struct tnode *root, const char *path,
			 const char *want)
{
	char *got = render(root, path);

	CHECK_STR(got, want);
	free(got);
}

static void test_mapping(void)
{
	const struct tnode *n, *c = NULL;
	struct tnode *root;
	int count = 0, dups = 0;
	char name[TREE_NAME_MAX + 1];

	CHECK(json_to_tree(task, strlen(task), &root) == 0);
	check_render(root, "task_id", "t1\n");
	check_render(root, "n", "42\n");
	check_render(root, "f", "0.75\n");
	check_render(root, "big", "1e3\n");
	check_render(root, "ok", "true\n");
	check_render(root, "no", "false\n");
	check_render(root, "s", "multi\nline \xc3\xa9\n");
	check_render(root, "tags", "a\n1\n\ntrue\n");
	check_render(root, "empty", "");
	check_render(root, "nested/a/b", "deep\n");
	check_render(root, "objs/0/x", "1\n");
	check_render(root, "objs/2", "2\n");
	check_render(root, "a%2Fb", "1\n");
	check_render(root, "%2E", "2\n");
	check_render(root, "%2E%2E", "3\n");
	check_render(root, "%00", "4\n");
	check_render(root, "50%25", "5\n");
	check_render(root, "dup", "1\n");
	CHECK(tnode_walk(root, "gone", &n) == -ENOENT);
	CHECK(tnode_walk(root, "objs/1", &n) == -ENOENT);
	CHECK(tnode_walk(root, "n/x", &n) == -ENOTDIR);
	CHECK(tnode_walk(root, "objs", &n) == 0 && tnode_view(n) == TV_DIR);
	CHECK(tnode_walk(root, "tags", &n) == 0 && tnode_view(n) == TV_FILE);
	CHECK(tnode_walk(root, "nested", &n) == 0 &&
	      tnode_render(n, &(struct buf)BUF_INIT(10)) == -EISDIR);
	while ((c = tnode_next_shown(root, c))) {
		tnode_name(c, name);
		CHECK(strcmp(name, "gone") != 0);
		CHECK(strchr(name, '/') == NULL);
		CHECK(strcmp(name, ".") && strcmp(name, ".."));
		dups += !strcmp(name, "dup");
		count++;
	}
	CHECK(dups == 1);
	CHECK(count == 18); /* 20 keys, less one null and one repeat */
	tnode_free(root);
}

/* Rendered bytes, which may hold NULs. */
static void check_bytes(const struct tnode *root, const char *path,
			const char *want, size_t len)
{
	const struct tnode *n;
	struct buf b = BUF_INIT(1 << 20);

	CHECK(tnode_walk(root, path, &n) == 0 && tnode_render(n, &b) == 0);
	CHECK(b.len == len && !memcmp(buf_str(&b), want, len));
	if (b.len != len || memcmp(buf_str(&b), want, len))
		fprintf(stderr, "  %s: got %zu bytes '%s'\n", path, b.len,
			buf_str(&b));
	buf_release(&b);
}

/* Every number is the API's own text, whatever a double would make of it. */
static void test_numbers(void)
{
	static const char *const nums[] = {
		"0.30000000000000004",
		"9007199254740993",
		"18446744073709551615",
		"0.0",
		"-0",
		"1e400",
		"1E+2",
		"-1.50",
		"1e-400",
		"2.5E-999999999",
		"-7e+999999999999999999",
		"123456789012345678901234567890.000000000000000000001",
	};
	struct buf doc = BUF_INIT(1 << 20);
	struct tnode *root;
	char key[8], want[128];
	size_t i, n = sizeof(nums) / sizeof(nums[0]);

	/* spaced out as the API may send it, and as task.json is */
	buf_addstr(&doc, "{ \"list\" : [ 1.0 ,\n2E1 , -0.0 ]");
	for (i = 0; i < n; i++)
		buf_printf(&doc, ",\n\t\"n%zu\":\t%s", i, nums[i]);
	buf_addstr(&doc, ", \"deep\": [{\"x\": [[0.10]]}] }");
	CHECK(json_to_tree(buf_str(&doc), doc.len, &root) == 0);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "n%zu", i);
		snprintf(want, sizeof(want), "%s\n", nums[i]);
		check_render(root, key, want);
	}
	check_render(root, "list", "1.0\n2E1\n-0.0\n");
	check_render(root, "deep/0/x/0", "0.10\n");
	tnode_free(root);
	buf_release(&doc);
	/* a number alone, and one followed by what cJSON does not read */
	CHECK(json_to_tree("1E+2", 4, &root) == 0);
	check_render(root, "", "1E+2\n");
	tnode_free(root);
	CHECK(json_to_tree("-1.50e7junk", 11, &root) == 0);
	check_render(root, "", "-1.50e7\n");
	tnode_free(root);
}

/* A string's file holds its bytes, NULs too. */
static void test_nul_strings(void)
{
	static const char doc[] =
		"{\"s\":\"a\\u0000b\",\"z\":\"\\u0000\",\"two\":"
		"\"\\u0000x\\u0000\",\"not\":\"x\\\\u0000\",\"raw\":\"r\0s\","
		"\"list\":[\"a\\u0000\",\"\\u00e9\\u0000\\ud83d\\ude00\"]}";
	struct tnode *root;

	CHECK(json_to_tree(doc, sizeof(doc) - 1, &root) == 0);
	check_bytes(root, "s", "a\0b\n", 4);
	check_bytes(root, "z", "\0\n", 2);
	check_bytes(root, "two", "\0x\0\n", 4);
	check_bytes(root, "not", "x\\u0000\n", 8);
	check_bytes(root, "raw", "r\0s\n", 4);
	check_bytes(root, "list", "a\0\n\xc3\xa9\0\xf0\x9f\x98\x80\n", 11);
	tnode_free(root);
	/* cJSON reads a \u without four hex digits as a NUL, too */
	CHECK(json_to_tree("[\"\\uZZ00x\\u\\\"ab\"]", 17, &root) == 0);
	check_bytes(root, "", "\0x\0\n", 4);
	tnode_free(root);
	/* ... even where that takes a backslash, and leaves a quote bare */
	CHECK(json_to_tree("[\"a\\u000\\\"\",\"\\u123\\\\\"]", 22, &root) == 0);
	check_bytes(root, "", "a\0\"\n\0\"\n", 7);
	tnode_free(root);
}

/*
 * An object of many keys: indexed, a repeated key shows its first value,
 * nulls are not shown, and every key is found (and listed) once.
 */
static void test_many_keys(void)
{
	struct buf doc = BUF_INIT(1 << 20);
	const struct tnode *c, *dup;
	char name[TREE_NAME_MAX + 1];
	struct tnode *root;
	int i, shown = 0, found = 0;

	buf_addch(&doc, '{');
	for (i = 0; i < 2000; i++)
		buf_printf(&doc, "%s\"k%d\":%d", i ? "," : "", 1999 - i, i);
	buf_addstr(&doc, ",\"k7\":\"again\",\"gone\":null,\"a/b\":1}");
	CHECK(json_to_tree(buf_str(&doc), doc.len, &root) == 0);
	if (!root)
		return;
	CHECK(root->idx && root->nidx == 2001);
	for (c = tnode_next_shown(root, NULL); c; c = tnode_next_shown(root, c))
		shown++;
	CHECK(shown == 2001); /* not the second k7, not the null */
	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		c = tnode_find(root, name);
		found += c && c->type == TN_NUMBER && atoi(c->text) == 1999 - i;
	}
	CHECK(found == 2000);
	dup = tnode_find(root, "k7");
	CHECK(dup && dup->type == TN_NUMBER); /* the first k7 */
	CHECK(!tnode_find(root, "gone"));
	CHECK(tnode_find(root, "a%2Fb") && !tnode_find(root, "a/b"));
	CHECK(!tnode_find(root, "k2000"));
	tnode_free(root);
	/* a small object: not indexed, the repeat hidden all the same */
	CHECK(json_to_tree("{\"a\":1,\"b\":2,\"a\":3}", 19, &root) == 0);
	CHECK(root && !root->idx);
	c = root ? tnode_find(root, "a") : NULL;
	CHECK(c && !strcmp(c->text, "1"));
	for (shown = 0, c = root ? tnode_next_shown(root, NULL) : NULL; c;
	     c = tnode_next_shown(root, c))
		shown++;
	CHECK(shown == 2);
	tnode_free(root);
	buf_release(&doc);
}

int main(void)
{
	test_mapping();
	test_numbers();
	test_nul_strings();
	test_many_keys();
	return check_done();
}
