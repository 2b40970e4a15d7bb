// SPDX-License-Identifier: MIT
/*
 * Fuzz the generic tree of arbitrary JSON: json_to_tree on the bytes, then
 * the whole tree as the filesystem shows it (tnode_next_shown, names,
 * lookups by name and by path, rendering), checking the invariants in
 * fuzz_common.c; and the document on one line (.jsonl) and as a .tsv
 * line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "lines.h"
#include "text.h"
#include "tree.h"

#define MAX_DEPTH 1100 /* beyond cJSON's nesting limit: the whole tree */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tnode *root = NULL, *again = NULL;
	struct buf pretty = BUF_INIT((size_t)1 << 30);
	int res = json_to_tree((const char *)data, size, &root);

	FUZZ_CHECK(res == 0 || res == -EIO);
	if (res)
		return 0;
	fuzz_check_tree(root, MAX_DEPTH);

	/* pretty-printed, the same document builds the same tree */
	FUZZ_CHECK(json_pretty((const char *)data, size, &pretty) == 0);
	FUZZ_CHECK(pretty.len > 0 && pretty.data[pretty.len - 1] == '\n');
	FUZZ_CHECK(json_to_tree(pretty.data, pretty.len, &again) == 0);
	FUZZ_CHECK(fuzz_tree_equal(root, again));
	/* and pretty-printing it again changes nothing (jq's layout) */
	{
		struct buf twice = BUF_INIT((size_t)1 << 30);

		FUZZ_CHECK(json_pretty(pretty.data, pretty.len, &twice) == 0);
		FUZZ_CHECK(twice.len == pretty.len &&
			   !memcmp(twice.data, pretty.data, pretty.len));
		buf_release(&twice);
	}

	tnode_free(again);
	again = NULL;

	/*
	 * On one line (a .jsonl line): no byte below 0x20 but its last
	 * newline (a DEL may stay: JSON allows it), and the same tree; the
	 * .tsv line, one line too.
	 */
	buf_release(&pretty);
	FUZZ_CHECK(json_line((const char *)data, size, &pretty) == 0);
	FUZZ_CHECK(pretty.len > 0 && pretty.data[pretty.len - 1] == '\n');
	for (size_t i = 0; i + 1 < pretty.len; i++)
		FUZZ_CHECK((unsigned char)pretty.data[i] >= 0x20);
	FUZZ_CHECK(json_to_tree(pretty.data, pretty.len, &again) == 0);
	FUZZ_CHECK(fuzz_tree_equal(root, again));
	buf_release(&pretty);
	FUZZ_CHECK(lines_tsv("i", "t", "s", (const char *)data, size,
			     &pretty) == 0);
	FUZZ_CHECK(pretty.len > 0 && pretty.data[pretty.len - 1] == '\n');
	FUZZ_CHECK(memchr(pretty.data, '\n', pretty.len) ==
		   pretty.data + pretty.len - 1);
	FUZZ_CHECK(text_control(pretty.data + 6, pretty.len - 7) < 0);

	tnode_free(again);
	tnode_free(root);
	buf_release(&pretty);
	return 0;
}
