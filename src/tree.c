// SPDX-License-Identifier: MIT
/*
 * tree: the generic task tree and its mapping to files and folders.
 * No JSON library here: json.c builds the tree, this file only reads it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

void tnode_free(struct tnode *root)
{
	free(root);
}

static bool is_container(const struct tnode *n)
{
	return n->type == TN_ARRAY || n->type == TN_OBJECT;
}

enum tview tnode_view(const struct tnode *n)
{
	const struct tnode *c;

	switch (n->type) {
	case TN_NULL: return TV_NONE;
	case TN_OBJECT: return TV_DIR;
	case TN_ARRAY:
		for (c = n->child; c; c = c->next)
			if (is_container(c))
				return TV_DIR;
		return TV_FILE;
	default: return TV_FILE;
	}
}

static int render_scalar(const struct tnode *n, struct buf *out)
{
	switch (n->type) {
	case TN_TRUE: return buf_addstr(out, "true\n");
	case TN_FALSE: return buf_addstr(out, "false\n");
	case TN_NUMBER:
	case TN_STRING: {
		int res = n->text ? buf_add(out, n->text, n->len) : 0;

		return res ? res : buf_addch(out, '\n');
	}
	default: return buf_addch(out, '\n');
	}
}

int tnode_render(const struct tnode *n, struct buf *out)
{
	const struct tnode *c;
	int res = 0;

	if (tnode_view(n) != TV_FILE)
		return -EISDIR;
	if (n->type != TN_ARRAY)
		return render_scalar(n, out);
	for (c = n->child; c && !res; c = c->next)
		res = render_scalar(c, out);
	return res;
}

void tnode_name(const struct tnode *n, char *name)
{
	if (n->key)
		tree_name_escape(n->key, name);
	else
		snprintf(name, TREE_NAME_MAX + 1, "%zu", n->index);
}

static bool shown_before(const struct tnode *dir, const struct tnode *n,
			 const char *name)
{
	char other[TREE_NAME_MAX + 1];
	const struct tnode *c;

	if (!n->key)
		return false; /* array indexes are unique */
	for (c = dir->child; c != n; c = c->next) {
		if (tnode_view(c) == TV_NONE)
			continue;
		tnode_name(c, other);
		if (!strcmp(other, name))
			return true;
	}
	return false;
}

const struct tnode *tnode_next_shown(const struct tnode *dir,
				     const struct tnode *prev)
{
	char name[TREE_NAME_MAX + 1];
	const struct tnode *c = prev ? prev->next : dir->child;

	for (; c; c = c->next) {
		if (tnode_view(c) == TV_NONE)
			continue;
		tnode_name(c, name);
		if (!shown_before(dir, c, name))
			return c;
	}
	return NULL;
}

const struct tnode *tnode_find(const struct tnode *dir, const char *name)
{
	char cname[TREE_NAME_MAX + 1];
	const struct tnode *c;

	if (tnode_view(dir) != TV_DIR)
		return NULL;
	for (c = dir->child; c; c = c->next) {
		if (tnode_view(c) == TV_NONE)
			continue;
		tnode_name(c, cname);
		if (!strcmp(cname, name))
			return c; /* the first one is the shown one */
	}
	return NULL;
}

int tnode_walk(const struct tnode *root, const char *relpath,
	       const struct tnode **out)
{
	char name[TREE_NAME_MAX + 1];
	const struct tnode *n = root;
	const char *p = relpath, *slash;
	size_t len;

	while (*p) {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > TREE_NAME_MAX)
			return -ENOENT;
		if (tnode_view(n) != TV_DIR)
			return -ENOTDIR;
		memcpy(name, p, len);
		name[len] = '\0';
		n = tnode_find(n, name);
		if (!n)
			return -ENOENT;
		p += len;
		if (*p == '/')
			p++;
	}
	*out = n;
	return 0;
}
