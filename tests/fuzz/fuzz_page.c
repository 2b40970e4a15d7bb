// SPDX-License-Identifier: MIT
/*
 * Fuzz the list-page parser and everything a parsed task goes through on
 * its way to files: json_parse_page, task_json, json_to_tree, the shown
 * members and their names, rendering, json_pretty; plus json_parse_task
 * and json_error_message on the same bytes.
 *
 * Beyond memory safety it checks that each record holds its own result:
 * the task's JSON builds the same tree as the result object in the page,
 * and carries the record's id, status and type.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "task.h"
#include "tree.h"

#define MAX_DEPTH 1100 /* beyond cJSON's nesting limit: the whole tree */

static const char *str_text(const struct tnode *n)
{
	return n && n->type == TN_STRING && n->text ? n->text : NULL;
}

/* The task's JSON, and its tree (which must build). */
static struct tnode *task_tree(const struct task *t, struct buf *json)
{
	struct tnode *tree = NULL;

	FUZZ_CHECK(task_json(t, json) == 0);
	FUZZ_CHECK(json->len == t->json_len);
	FUZZ_CHECK(json_to_tree(buf_str(json), json->len, &tree) == 0);
	return tree;
}

/* What every record must satisfy, whoever parsed it. */
static void check_task(const struct task *t, const struct tnode *item)
{
	struct buf json = BUF_INIT((size_t)1 << 30);
	struct buf pretty = BUF_INIT((size_t)1 << 30);
	struct tnode *tree = task_tree(t, &json), *ptree = NULL;
	const char *s;
	struct task *again = NULL;
	struct buf json2 = BUF_INIT((size_t)1 << 30);

	/* the record is the result object it came from */
	FUZZ_CHECK(*t->id);
	FUZZ_CHECK(tree->type == TN_OBJECT);
	FUZZ_CHECK((s = str_text(fuzz_member(tree, "task_id"))) &&
		   !strcmp(s, t->id));
	s = str_text(fuzz_member(tree, "status"));
	FUZZ_CHECK(t->status && !strcmp(t->status, s ? s : ""));
	s = str_text(fuzz_member(tree, "task_type"));
	FUZZ_CHECK(t->type && !strcmp(t->type, s ? s : ""));
	if (item)
		FUZZ_CHECK(fuzz_tree_equal(item, tree));

	fuzz_check_tree(tree, MAX_DEPTH);

	/* reading the record's own JSON back gives the same record */
	FUZZ_CHECK(json_parse_task(buf_str(&json), json.len, &again) == 0);
	FUZZ_CHECK(!strcmp(again->id, t->id));
	FUZZ_CHECK(again->status == t->status && again->type == t->type);
	FUZZ_CHECK(task_json(again, &json2) == 0);
	FUZZ_CHECK(json2.len == json.len &&
		   !memcmp(buf_str(&json2), buf_str(&json), json.len));
	task_unref(again);

	/* pretty-printing gives JSON again, and a final newline */
	FUZZ_CHECK(buf_addstr(&pretty, "x") == 0);
	FUZZ_CHECK(json_pretty(buf_str(&json), json.len, &pretty) == 0);
	FUZZ_CHECK(pretty.len > 2 && pretty.data[0] == 'x' &&
		   pretty.data[pretty.len - 1] == '\n');
	FUZZ_CHECK(json_to_tree(pretty.data + 1, pretty.len - 1, &ptree) == 0);
	FUZZ_CHECK(fuzz_tree_equal(tree, ptree));

	tnode_free(ptree);
	tnode_free(tree);
	buf_release(&json);
	buf_release(&json2);
	buf_release(&pretty);
}

/* Would json_parse_page keep this result? */
/*
 * Whether a result makes a record: an object with a non-empty task_id
 * that holds no NUL, and no member named twice at its top (json.c).
 */
static bool usable(const struct tnode *item)
{
	const struct tnode *id = fuzz_member(item, "task_id"), *a, *b;

	if (item->type != TN_OBJECT || !str_text(id) || !*id->text ||
	    strlen(id->text) != id->len)
		return false;
	for (a = item->child; a; a = a->next)
		for (b = a->next; b; b = b->next)
			if (!strcmp(a->key, b->key))
				return false;
	return true;
}

static void check_page(const char *body, size_t len)
{
	struct tnode *doc = NULL;
	const struct tnode *results = NULL, *item, *pag;
	struct page page;
	size_t i, count = 0;
	int res = json_parse_page(body, len, &page);
	int tres = json_to_tree(body, len, &doc);

	FUZZ_CHECK(res == 0 || res == -EIO);
	if (tres == 0)
		results = fuzz_member(doc, "results");
	/* a document cJSON takes is a page exactly when it has results */
	FUZZ_CHECK(tres != 0 ||
		   (res == 0) == (results && results->type == TN_ARRAY));
	if (res) {
		FUZZ_CHECK(page.n == 0 && !page.tasks && !page.next_cursor);
		tnode_free(doc);
		return;
	}
	FUZZ_CHECK(page.total >= -1);
	if (tres) {
		/*
		 * Not JSON that cJSON takes whole (too deep, say), yet a
		 * page: the results were parsed one by one. Each record
		 * must still be sound.
		 */
		for (i = 0; i < page.n; i++)
			check_task(page.tasks[i], NULL);
		page_release(&page);
		return;
	}
	/*
	 * The whole document parsed, so it says what the page holds: the
	 * usable results, in order, and the rest counted as skipped.
	 */
	for (item = results->child, i = 0; item; item = item->next) {
		count++;
		if (!usable(item))
			continue;
		FUZZ_CHECK(i < page.n);
		check_task(page.tasks[i], item);
		i++;
	}
	FUZZ_CHECK(i == page.n);
	FUZZ_CHECK(page.n + page.skipped == count);

	pag = fuzz_member(doc, "pagination");
	if (pag && pag->type == TN_OBJECT) {
		const char *cur = str_text(fuzz_member(pag, "next_cursor"));

		if (cur && *cur)
			FUZZ_CHECK(page.next_cursor &&
				   !strcmp(page.next_cursor, cur));
		else
			FUZZ_CHECK(!page.next_cursor);
	} else {
		FUZZ_CHECK(!page.next_cursor);
		FUZZ_CHECK(page.total == -1);
	}

	page_release(&page);
	FUZZ_CHECK(page.n == 0 && !page.tasks && page.total == -1);
	tnode_free(doc);
}

static void check_single(const char *body, size_t len)
{
	struct tnode *doc = NULL;
	struct task *t = NULL;
	int res = json_parse_task(body, len, &t);

	FUZZ_CHECK(res == 0 || res == -EIO);
	if (json_to_tree(body, len, &doc) == 0) {
		FUZZ_CHECK((res == 0) == usable(doc));
	} else {
		FUZZ_CHECK(res == -EIO);
	}
	if (res == 0) {
		check_task(t, doc);
		task_unref(t);
	}
	tnode_free(doc);
}

static void check_error_message(const char *body, size_t len)
{
	static const size_t sizes[] = { 1, 2, 17, 256 };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* exactly the size given, so ASan sees any overrun */
		char *msg = malloc(sizes[i]);

		if (!msg)
			abort();
		memset(msg, 'Z', sizes[i]);
		json_error_message(body, len, msg, sizes[i]);
		FUZZ_CHECK(strnlen(msg, sizes[i]) < sizes[i]);
		free(msg);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the bytes as libFuzzer gives them: not NUL-terminated */
	const char *body = (const char *)data;

	check_page(body, size);
	check_single(body, size);
	check_error_message(body, size);
	return 0;
}
