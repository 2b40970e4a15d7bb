// SPDX-License-Identifier: MIT
/*
 * tree: the generic task tree and its mapping to files and folders.
 * No JSON library here: json.c builds the tree, this file only reads it.
 */
#include <errno.h>
#include <stdint.h>
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
	case TN_NULL:
		return TV_NONE;
	case TN_OBJECT:
		return TV_DIR;
	case TN_ARRAY:
		for (c = n->child; c; c = c->next)
			if (is_container(c))
				return TV_DIR;
		return TV_FILE;
	default:
		return TV_FILE;
	}
}

static int render_scalar(const struct tnode *n, struct buf *out)
{
	switch (n->type) {
	case TN_TRUE:
		return buf_addstr(out, "true\n");
	case TN_FALSE:
		return buf_addstr(out, "false\n");
	case TN_NUMBER:
	case TN_STRING: {
		int res = n->text ? buf_add(out, n->text, n->len) : 0;

		return res ? res : buf_addch(out, '\n');
	}
	default:
		return buf_addch(out, '\n');
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

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void tree_name_escape(const char *raw, char *out)
{
	/* worst case every byte becomes three; cut afterwards */
	size_t rawlen = strlen(raw), o = 0, cut, i;
	char stack[3 * 256], *tmp = stack;
	const char *p;

	if (!strcmp(raw, "") || !strcmp(raw, ".") || !strcmp(raw, "..")) {
		strcpy(out, !*raw ? "%00" : raw[1] ? "%2E%2E" : "%2E");
		return;
	}
	if (rawlen > 255) {
		tmp = malloc(3 * rawlen + 1);
		if (!tmp) {
			/* cannot escape in full: the hashed form needs no copy */
			snprintf(out, TREE_NAME_MAX + 1, "%%~%016llx",
				 (unsigned long long)fnv1a64(raw));
			return;
		}
	}
	for (p = raw; *p; p++) {
		if (*p == '%' || *p == '/') {
			sprintf(tmp + o, "%%%02X", (unsigned char)*p);
			o += 3;
		} else {
			tmp[o++] = *p;
		}
	}
	tmp[o] = '\0';
	if (o <= TREE_NAME_MAX) {
		memcpy(out, tmp, o + 1);
		goto out;
	}
	/* keep 200 bytes, backing off UTF-8 continuation bytes, then escapes */
	cut = 200;
	while (cut > 0 && ((unsigned char)tmp[cut] & 0xC0) == 0x80)
		cut--;
	for (i = cut >= 2 ? cut - 2 : 0; i < cut; i++)
		if (tmp[i] == '%')
			cut = i;
	memcpy(out, tmp, cut);
	snprintf(out + cut, TREE_NAME_MAX + 1 - cut, "%%~%016llx",
		 (unsigned long long)fnv1a64(raw));
out:
	if (tmp != stack)
		free(tmp);
}

int tree_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int tree_percent_decode(const char *s, size_t len, char **out)
{
	char *r = malloc(len + 1);
	size_t i, o = 0;

	if (!r)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] != '%') {
			r[o++] = s[i];
			continue;
		}
		hi = i + 2 < len ? tree_hexval(s[i + 1]) : -1;
		lo = hi >= 0 ? tree_hexval(s[i + 2]) : -1;
		if (lo < 0 || (hi == 0 && lo == 0)) {
			free(r);
			return -EINVAL;
		}
		r[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	r[o] = '\0';
	*out = r;
	return 0;
}

int tree_name_unescape(const char *name, char **raw)
{
	if (strstr(name, "%~"))
		return -EINVAL;
	if (!strcmp(name, "%00")) {
		*raw = strdup("");
		return *raw ? 0 : -ENOMEM;
	}
	return tree_percent_decode(name, strlen(name), raw);
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
		return false;	/* array indexes are unique */
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
			return c;	/* the first one is the shown one */
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
