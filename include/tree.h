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

#define TREE_NAME_MAX 255

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
	char *key;		/* raw member name; NULL in arrays and the root */
	char *text;		/* strings and numbers: the value as text, */
	size_t len;		/* len bytes (a string may hold NULs), NUL-ended */
	size_t index;		/* position among the parent's members */
	struct tnode *child;	/* first member */
	struct tnode *next;	/* next sibling */
};

enum tview {
	TV_NONE,		/* not shown (null) */
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
 * Follow relpath, escaped names separated by '/', from root. An empty
 * relpath gives root. 0, -ENOENT or -ENOTDIR.
 */
int tnode_walk(const struct tnode *root, const char *relpath,
	       const struct tnode **out);

/*
 * Escape a raw name into a valid file name (out: TREE_NAME_MAX + 1 bytes):
 * '%' -> %25, '/' -> %2F; "." -> %2E, ".." -> %2E%2E, "" -> %00; an escaped
 * name longer than 255 bytes keeps its first 200 bytes (never splitting an
 * escape or a UTF-8 sequence), then "%~" and 16 hex digits of the FNV-1a
 * 64-bit hash of the raw name.
 */
void tree_name_escape(const char *raw, char *out);

/*
 * Undo tree_name_escape into a malloc'd string (*raw). -EINVAL when name
 * is a hashed long name, which cannot be reversed without the original.
 */
int tree_name_unescape(const char *name, char **raw);
/*
 * Percent-decode [s, s + len) into a malloc'd *out: -EINVAL for a bad or
 * cut escape and for %00 (no NUL inside a name or value), -ENOMEM.
 */
int tree_percent_decode(const char *s, size_t len, char **out);

/* The value of hex digit c, or -1. */
int tree_hexval(char c);

#endif
