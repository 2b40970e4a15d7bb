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

const struct tnode *tnode_next_shown(const struct tnode *dir,
				     const struct tnode *prev)
{
	const struct tnode *c = prev ? prev->next : dir->child;

	while (c && (c->hidden || tnode_view(c) == TV_NONE))
		c = c->next;
	return c;
}

/* A member and its escaped name, while an object is indexed. */
struct named {
	struct tnode *n;
	char *name;
};

static int by_name(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* the first member of a name is the one shown */
	return c ? c :
		   (x->n->index > y->n->index) - (x->n->index < y->n->index);
}

int tree_index(struct tnode *dir, struct tnode **slots)
{
	struct named *v;
	struct tnode *c, *o;
	char name[TREE_NAME_MAX + 1], other[TREE_NAME_MAX + 1];
	size_t n = 0, i, k = 0;

	if (dir->type != TN_OBJECT)
		return 0;
	for (c = dir->child; c; c = c->next)
		n += tnode_view(c) != TV_NONE;
	if (n < TREE_INDEX_MIN) {
		/* few: compare each with the ones before it */
		for (c = dir->child; c; c = c->next) {
			if (tnode_view(c) == TV_NONE)
				continue;
			tnode_name(c, name);
			for (o = dir->child; o != c && !c->hidden; o = o->next)
				if (!o->hidden && tnode_view(o) != TV_NONE) {
					tnode_name(o, other);
					c->hidden = !strcmp(name, other);
				}
		}
		return 0;
	}
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (c = dir->child; c; c = c->next) {
		if (tnode_view(c) == TV_NONE)
			continue;
		tnode_name(c, name);
		v[k].n = c;
		if (!(v[k++].name = strdup(name)))
			break;
	}
	if (k == n)
		qsort(v, n, sizeof(*v), by_name);
	for (i = 0; i < n && k == n; i++) {
		v[i].n->hidden = i > 0 && !strcmp(v[i].name, v[i - 1].name);
		if (!v[i].n->hidden)
			slots[dir->nidx++] = v[i].n;
	}
	if (k == n)
		dir->idx = slots;
	for (i = 0; i < k; i++)
		free(v[i].name);
	free(v);
	return k == n ? 0 : -ENOMEM;
}

const struct tnode *tnode_find(const struct tnode *dir, const char *name)
{
	char cname[TREE_NAME_MAX + 1];
	const struct tnode *c;
	size_t lo = 0, hi = dir->nidx;

	if (tnode_view(dir) != TV_DIR)
		return NULL;
	if (dir->idx) {
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int cmp;

			tnode_name(dir->idx[mid], cname);
			cmp = strcmp(cname, name);
			if (!cmp)
				return dir->idx[mid];
			if (cmp < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return NULL;
	}
	for (c = tnode_next_shown(dir, NULL); c; c = tnode_next_shown(dir, c)) {
		tnode_name(c, cname);
		if (!strcmp(cname, name))
			return c;
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
