// SPDX-License-Identifier: MIT
/*
 * Invariant checks shared by the fuzz targets. Everything here is an
 * independent statement of what include/tree.h promises; none of it
 * reuses the library's own helpers for the thing being checked.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "tree.h"

/* Beyond this many members a directory gets sampled checks only. */
#define FULL_CHECK_MAX 256
#define SAMPLE_EVERY 64
/* The longest escaped prefix kept before "%~" and the hash. */
#define HASH_PREFIX_MAX 200

void fuzz_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
	fflush(stderr);
	__builtin_trap();
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void fuzz_check_name(const char *name)
{
	size_t len = strnlen(name, TREE_NAME_MAX + 1);

	FUZZ_CHECK(len > 0);
	FUZZ_CHECK(len <= TREE_NAME_MAX);
	FUZZ_CHECK(!strchr(name, '/'));
	FUZZ_CHECK(strcmp(name, ".") != 0);
	FUZZ_CHECK(strcmp(name, "..") != 0);
}

/* The full, uncut escape of raw as the header describes it. malloc'd. */
static char *full_escape(const char *raw)
{
	size_t len = strlen(raw), o = 0;
	char *s = malloc(3 * len + 8);
	const char *p;

	if (!s)
		abort();
	if (!strcmp(raw, "")) {
		strcpy(s, "%00");
		return s;
	}
	if (!strcmp(raw, ".")) {
		strcpy(s, "%2E");
		return s;
	}
	if (!strcmp(raw, "..")) {
		strcpy(s, "%2E%2E");
		return s;
	}
	if (!strcmp(raw, ".jsonl") || !strcmp(raw, ".tsv") ||
	    !strcmp(raw, ".refresh") || !strcmp(raw, ".wait")) {
		/* the hidden files' names: the dot escaped */
		snprintf(s, 3 * len + 8, "%%2E%s", raw + 1);
		return s;
	}
	for (p = raw; *p; p++) {
		if (*p == '%') {
			memcpy(s + o, "%25", 3);
			o += 3;
		} else if (*p == '/') {
			memcpy(s + o, "%2F", 3);
			o += 3;
		} else {
			s[o++] = *p;
		}
	}
	s[o] = '\0';
	return s;
}

static unsigned long long hash_raw(const char *s)
{
	unsigned long long h = 14695981039346656037ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

void fuzz_check_escaped(const char *raw, const char *name)
{
	char *full = full_escape(raw), *back = NULL;
	const char *mark = strstr(name, "%~");
	size_t flen = strlen(full);
	int res;

	fuzz_check_name(name);
	if (flen <= TREE_NAME_MAX) {
		/* fits: the whole escape, reversible */
		FUZZ_CHECK(strcmp(name, full) == 0);
		FUZZ_CHECK(mark == NULL);
		res = tree_name_unescape(name, &back);
		FUZZ_CHECK(res == 0);
		FUZZ_CHECK(strcmp(back, raw) == 0);
		free(back);
	} else {
		/* too long: a cut of the escape, "%~" and the hash */
		size_t cut, i;
		char hash[17];

		FUZZ_CHECK(mark != NULL);
		cut = (size_t)(mark - name);
		FUZZ_CHECK(cut <= HASH_PREFIX_MAX);
		FUZZ_CHECK(memcmp(name, full, cut) == 0);
		/* never inside an escape ... */
		FUZZ_CHECK(cut < 1 || name[cut - 1] != '%');
		FUZZ_CHECK(cut < 2 || name[cut - 2] != '%');
		/* ... nor inside a UTF-8 sequence (unless nothing is kept) */
		FUZZ_CHECK(cut == 0 ||
			   ((unsigned char)full[cut] & 0xC0) != 0x80);
		for (i = 0; i < 16; i++)
			FUZZ_CHECK(is_lower_hex(mark[2 + i]));
		FUZZ_CHECK(mark[18] == '\0');
		snprintf(hash, sizeof(hash), "%016llx", hash_raw(raw));
		FUZZ_CHECK(memcmp(mark + 2, hash, 16) == 0);
		FUZZ_CHECK(tree_name_unescape(name, &back) == -EINVAL);
	}
	free(full);
}

void fuzz_check_escape(const char *raw)
{
	/* exactly the documented size, so ASan sees any overrun */
	char *name = malloc(TREE_NAME_MAX + 1), *again;

	if (!name)
		abort();
	tree_name_escape(raw, name);
	fuzz_check_escaped(raw, name);
	/* deterministic */
	again = malloc(TREE_NAME_MAX + 1);
	if (!again)
		abort();
	tree_name_escape(raw, again);
	FUZZ_CHECK(strcmp(name, again) == 0);
	free(again);
	free(name);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* What tree_name_unescape should give: 0 and *raw, or -EINVAL. */
static int ref_unescape(const char *name, char **raw)
{
	size_t len = strlen(name), o = 0, i;
	char *r;

	if (strstr(name, "%~"))
		return -EINVAL;
	r = malloc(len + 1);
	if (!r)
		abort();
	if (!strcmp(name, "%00")) {
		r[0] = '\0';
		*raw = r;
		return 0;
	}
	for (i = 0; i < len; i++) {
		int hi, lo;

		if (name[i] != '%') {
			r[o++] = name[i];
			continue;
		}
		hi = i + 1 < len ? hex_digit(name[i + 1]) : -1;
		lo = i + 2 < len ? hex_digit(name[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi | lo) == 0) {
			free(r);
			return -EINVAL;
		}
		r[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	r[o] = '\0';
	*raw = r;
	return 0;
}

void fuzz_check_unescape(const char *name)
{
	char *raw = NULL, *want = NULL;
	int res = tree_name_unescape(name, &raw);
	int ref = ref_unescape(name, &want);

	FUZZ_CHECK(res == 0 || res == -EINVAL);
	FUZZ_CHECK(res == ref);
	if (res == 0) {
		FUZZ_CHECK(strcmp(raw, want) == 0);
		FUZZ_CHECK(strlen(raw) <= strlen(name));
		/* whatever it decodes to escapes to a valid, reversible name */
		fuzz_check_escape(raw);
	}
	free(raw);
	free(want);
}

/* ---- trees ---- */

static size_t scalar_size(const struct tnode *n)
{
	switch (n->type) {
	case TN_TRUE: return 5;
	case TN_FALSE: return 6;
	case TN_NUMBER:
	case TN_STRING: return (n->text ? n->len : 0) + 1;
	default: return 1;
	}
}

static void check_render(const struct tnode *n)
{
	static const char prefix[] = "prefix:";
	const size_t plen = sizeof(prefix) - 1;
	struct buf b = BUF_INIT((size_t)1 << 30);
	const struct tnode *c;
	size_t want = 0;

	if (n->type == TN_ARRAY) {
		for (c = n->child; c; c = c->next) {
			FUZZ_CHECK(c->type != TN_ARRAY && c->type != TN_OBJECT);
			want += scalar_size(c);
		}
	} else {
		FUZZ_CHECK(n->type != TN_OBJECT && n->type != TN_NULL);
		FUZZ_CHECK((n->type != TN_NUMBER && n->type != TN_STRING) ||
			   (n->text != NULL && n->text[n->len] == '\0'));
		want = scalar_size(n);
	}
	/* it appends: what is already there stays */
	FUZZ_CHECK(buf_addstr(&b, prefix) == 0);
	FUZZ_CHECK(tnode_render(n, &b) == 0);
	FUZZ_CHECK(b.len == plen + want);
	FUZZ_CHECK(memcmp(b.data, prefix, plen) == 0);
	if (n->type == TN_NUMBER) {
		/* the source's text: all of it is the number strtod reads */
		char *e;

		FUZZ_CHECK(n->len > 0);
		strtod(n->text, &e);
		FUZZ_CHECK(e == n->text + n->len);
		FUZZ_CHECK(!memcmp(b.data + plen, n->text, n->len));
	}
	FUZZ_CHECK(want == 0 || b.data[b.len - 1] == '\n');
	buf_release(&b);
}

struct walk {
	const struct tnode *root;
	struct buf path; /* relpath of the directory being walked */
	bool path_ok;	 /* false once an append failed */
	unsigned max_depth;
};

static void path_truncate(struct walk *w, size_t len)
{
	if (w->path_ok && w->path.data) {
		w->path.len = len;
		w->path.data[len] = '\0';
	}
}

static void path_push(struct walk *w, const char *name)
{
	if (!w->path_ok)
		return;
	if ((w->path.len && buf_addch(&w->path, '/')) ||
	    buf_addstr(&w->path, name))
		w->path_ok = false; /* the buffer released itself */
}

static bool sampled(size_t i, size_t members)
{
	return members <= FULL_CHECK_MAX || i < SAMPLE_EVERY ||
		i % SAMPLE_EVERY == 0;
}

static void check_index_name(const struct tnode *c, const char *name)
{
	char want[32];

	snprintf(want, sizeof(want), "%zu", c->index);
	FUZZ_CHECK(strcmp(name, want) == 0);
}

static void walk_dir(struct walk *w, const struct tnode *dir, unsigned depth)
{
	const struct tnode *c, *prev = NULL, *found;
	size_t base = w->path.len, members = 0, shown = 0, first = 0;
	char name[TREE_NAME_MAX + 1];

	FUZZ_CHECK(tnode_view(dir) == TV_DIR);
	FUZZ_CHECK(dir->type == TN_OBJECT || dir->type == TN_ARRAY);
	{
		/* a directory renders as nothing */
		struct buf b = BUF_INIT(64);

		FUZZ_CHECK(tnode_render(dir, &b) == -EISDIR);
		FUZZ_CHECK(b.len == 0);
		buf_release(&b);
	}
	for (c = dir->child; c; c = c->next)
		members++;

	while ((c = tnode_next_shown(dir, prev))) {
		enum tview v = tnode_view(c);

		/* in order, never a null, keys exactly in objects */
		FUZZ_CHECK(v == TV_FILE || v == TV_DIR);
		FUZZ_CHECK(!prev || c->index > prev->index);
		FUZZ_CHECK(c->index < members);
		FUZZ_CHECK((dir->type == TN_OBJECT) == (c->key != NULL));

		tnode_name(c, name);
		if (c->key)
			fuzz_check_escaped(c->key, name);
		else
			check_index_name(c, name);

		if (sampled(shown, members)) {
			/* the shown member is what its name finds */
			FUZZ_CHECK(tnode_find(dir, name) == c);
			path_push(w, name);
			if (w->path_ok) {
				FUZZ_CHECK(tnode_walk(w->root,
						      buf_str(&w->path),
						      &found) == 0);
				FUZZ_CHECK(found == c);
			}
		} else {
			path_push(w, name);
		}

		if (v == TV_FILE) {
			check_render(c);
			if (w->path_ok) {
				/* nothing lies below a file */
				FUZZ_CHECK(buf_addstr(&w->path, "/x") ||
					   tnode_walk(w->root,
						      buf_str(&w->path),
						      &found) == -ENOTDIR);
				w->path_ok = w->path.data != NULL;
			}
		} else if (depth < w->max_depth) {
			walk_dir(w, c, depth + 1);
		}
		path_truncate(w, base);
		prev = c;
		shown++;
	}

	/* exactly the first non-null member of each name is shown */
	if (members <= FULL_CHECK_MAX) {
		for (c = dir->child; c; c = c->next) {
			if (tnode_view(c) == TV_NONE)
				continue;
			tnode_name(c, name);
			if (tnode_find(dir, name) == c)
				first++;
		}
		FUZZ_CHECK(first == shown);
	}
	/* names that cannot be members are not found */
	FUZZ_CHECK(tnode_find(dir, "") == NULL);
	FUZZ_CHECK(tnode_find(dir, ".") == NULL);
	FUZZ_CHECK(tnode_find(dir, "..") == NULL);
}

void fuzz_check_tree(const struct tnode *root, unsigned max_depth)
{
	struct walk w = { root, BUF_INIT((size_t)1 << 26), true, max_depth };
	const struct tnode *found = NULL;

	FUZZ_CHECK(tnode_walk(root, "", &found) == 0 && found == root);
	switch (tnode_view(root)) {
	case TV_DIR: walk_dir(&w, root, 0); break;
	case TV_FILE:
		check_render(root);
		FUZZ_CHECK(tnode_walk(root, "x", &found) == -ENOTDIR);
		break;
	case TV_NONE: FUZZ_CHECK(root->type == TN_NULL); break;
	}
	buf_release(&w.path);
}

/* The same text: numbers as written, strings with their NULs. */
static bool same_text(const struct tnode *a, const struct tnode *b)
{
	if (!a->text || !b->text)
		return a->text == b->text;
	return a->len == b->len && !memcmp(a->text, b->text, a->len);
}

int fuzz_tree_equal(const struct tnode *a, const struct tnode *b)
{
	const struct tnode *x, *y;

	if ((a->key == NULL) != (b->key == NULL))
		return 0;
	if (a->key && strcmp(a->key, b->key))
		return 0;
	if (a->type != b->type || !same_text(a, b))
		return 0;
	for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
		if (!fuzz_tree_equal(x, y))
			return 0;
	return x == NULL && y == NULL;
}

const struct tnode *fuzz_member(const struct tnode *obj, const char *key)
{
	const struct tnode *c;

	if (!obj || obj->type != TN_OBJECT)
		return NULL;
	for (c = obj->child; c; c = c->next)
		if (c->key && !strcmp(c->key, key))
			return c;
	return NULL;
}
