/* SPDX-License-Identifier: MIT */
/*
 * tree: a task's JSON as a generic tree, and the rules that turn it into
 * files and folders:
 *   string, number, boolean  -> file holding the value and "\n": a
 *                               string's bytes (NULs too), a number's
 *                               text as the API wrote it
 *   object                   -> folder
 *   array of scalars         -> file, one element per line
 *   array holding a container-> folder with entries 0, 1, 2, ...
 *   null                     -> no entry
 * Names that cannot be file names are escaped (tree_name_escape).
 */
#ifndef MIXPEEKFS_TREE_H
#define MIXPEEKFS_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "names.h"

enum tnode_type {
	TN_NULL,
	TN_FALSE,
	TN_TRUE,
	TN_NUMBER,
	TN_STRING,
	TN_ARRAY,
	TN_OBJECT,
};

struct tnode {
	enum tnode_type type;
	char *key;	     /* raw member name; NULL in arrays and the root */
	char *text;	     /* strings and numbers: the value as text, */
	size_t len;	     /* len bytes (a string may hold NULs), NUL-ended */
	size_t index;	     /* position among the parent's members */
	struct tnode *child; /* first member */
	struct tnode *next;  /* next sibling */
	/* an object's members shown, by escaped name, when it has
	 * TREE_INDEX_MIN of them or more (tnode_find's binary search) */
	struct tnode **idx;
	size_t nidx;
	bool hidden; /* a later member whose escaped name repeats one */
};

/* Objects with this many members are indexed (tree_index). */
#define TREE_INDEX_MIN 16

enum tview {
	TV_NONE, /* not shown (null) */
	TV_FILE,
	TV_DIR,
};

/*
 * A tree is one allocation (json_to_tree builds it): free it with
 * tnode_free(root). NULL is fine.
 */
void tnode_free(struct tnode *root);

enum tview tnode_view(const struct tnode *n);

/* Render a TV_FILE node's bytes into out. 0 or -errno. */
int tnode_render(const struct tnode *n, struct buf *out);

/* The escaped name a member shows under; name has TREE_NAME_MAX + 1 bytes. */
void tnode_name(const struct tnode *n, char *name);

/*
 * Iterate the members of a TV_DIR node that are shown, in order, skipping
 * nulls and later members whose escaped name repeats an earlier one.
 * Start with prev = NULL. Returns NULL at the end.
 */
const struct tnode *tnode_next_shown(const struct tnode *dir,
				     const struct tnode *prev);

/* The shown member of dir called name (escaped form), or NULL. */
const struct tnode *tnode_find(const struct tnode *dir, const char *name);

/*
 * Once dir's members are in place (json.c, as it builds the tree): mark
 * the members whose escaped name repeats an earlier one hidden, and with
 * TREE_INDEX_MIN members or more, index the shown ones in slots (room
 * for one pointer per member, from the tree's own block). In
 * O(n log n): a task of 32,000 keys is listed in well under a second.
 * -ENOMEM (a temporary table).
 */
int tree_index(struct tnode *dir, struct tnode **slots);

/*
 * Follow relpath, escaped names separated by '/', from root. An empty
 * relpath gives root. 0, -ENOENT or -ENOTDIR.
 */
int tnode_walk(const struct tnode *root, const char *relpath,
	       const struct tnode **out);

#endif
