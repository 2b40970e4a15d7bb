// SPDX-License-Identifier: MIT
/*
 * lines: a task as a line of .jsonl or .tsv. The error text is read from
 * the task's tree (json_to_tree), the same one its files come from, so
 * the .tsv shows what `cat <task>/error` shows.
 */
#include <errno.h>
#include <string.h>

#include "json.h"
#include "lines.h"
#include "text.h"
#include "tree.h"

int lines_jsonl(const char *json, size_t len, struct buf *out)
{
	return json_line(json, len, out);
}

/* Where the error text is, in order (escaped names, as tnode_walk). */
static const char *const error_paths[] = { "error", "error_message",
					   "additional_data/error" };

int lines_error(const char *json, size_t len, struct buf *out)
{
	struct tnode *root = NULL;
	size_t i;
	int res;

	res = json_to_tree(json, len, &root);
	for (i = 0; !res && i < sizeof(error_paths) / sizeof(*error_paths);
	     i++) {
		struct buf text = BUF_INIT(out->max);
		const struct tnode *at;

		if (tnode_walk(root, error_paths[i], &at) ||
		    tnode_view(at) != TV_FILE)
			continue;
		res = tnode_render(at, &text);
		if (!res && text.len > 1) {
			/* as cat shows it, less the newline it ends with */
			res = text_escape_buf(out, text.data, text.len - 1);
			buf_release(&text);
			break;
		}
		buf_release(&text);
	}
	tnode_free(root);
	return res;
}

int lines_tsv(const char *id, const char *type, const char *status,
	      const char *json, size_t len, struct buf *out)
{
	const char *cols[] = { id, type, status };
	int res = 0;
	size_t i;

	for (i = 0; i < 3 && !res; i++) {
		res = text_escape_buf(out, cols[i], strlen(cols[i]));
		res = res ? res : buf_addch(out, '\t');
	}
	res = res ? res : lines_error(json, len, out);
	return res ? res : buf_addch(out, '\n');
}
