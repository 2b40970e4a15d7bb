// SPDX-License-Identifier: MIT
/*
 * Fuzz the path side: the input is a relpath, a NUL byte, and a JSON
 * document (without a NUL the whole input is the relpath and a built-in
 * task is the document). Each entry of `checks` below gets the split
 * input; to fuzz another path grammar, add a function and list it there.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "query.h"
#include "tree.h"

struct path_input {
	const char *path; /* NUL-terminated: the bytes before the NUL */
	size_t path_len;
	const char *doc; /* the JSON document, not NUL-terminated */
	size_t doc_len;
	const uint8_t *data; /* the whole input */
	size_t size;
};

typedef void (*path_check)(const struct path_input *in);

static const char default_doc[] =
	"{\"task_id\":\"task_0123456789ab\",\"task_type\":\"thumbnail\","
	"\"status\":\"COMPLETED\",\"description\":\"caf\\u00e9 \\u2603\","
	"\"inputs\":[\"obj_1\",\"obj_2\"],\"outputs\":[{\"n\":1},null,[2,3]],"
	"\"additional_data\":{\"config\":{\"level\":3,\"tags\":[\"a\",1,"
	"true,null],\"deep\":{\"er\":{\"est\":\"x\"}}},\"\":\"empty\","
	"\".\":\"dot\",\"..\":\"dotdot\",\"a/b\":\"slash\",\"a%2Fb\":1,"
	"\"dup\":1,\"dup\":2,\"gone\":null,\"progress\":0.5},"
	"\"error\":null,\"created_at\":\"2026-11-01T00:00:00Z\"}";

/* ---- tnode_walk ---- */

/* The shown member of dir named name, without tnode_find. */
static const struct tnode *ref_find(const struct tnode *dir, const char *name,
				    size_t len)
{
	char cname[TREE_NAME_MAX + 1];
	const struct tnode *c;

	for (c = dir->child; c; c = c->next) {
		if (tnode_view(c) == TV_NONE)
			continue;
		tnode_name(c, cname);
		if (strlen(cname) == len && !memcmp(cname, name, len))
			return c; /* the first of a name is shown */
	}
	return NULL;
}

/* tnode_walk's contract, restated: NULL when the walk must fail. */
static const struct tnode *ref_walk(const struct tnode *root, const char *p)
{
	const struct tnode *n = root;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (tnode_view(n) != TV_DIR)
			return NULL;
		n = ref_find(n, p, len);
		if (!n)
			return NULL;
		p += len;
		if (*p == '/')
			p++;
	}
	return n;
}

static void check_walk(const struct path_input *in)
{
	struct tnode *root = NULL;
	const struct tnode *out = NULL, *want;
	int res;

	if (in->doc) {
		if (json_to_tree(in->doc, in->doc_len, &root))
			return;
	} else {
		FUZZ_CHECK(json_to_tree(default_doc, sizeof(default_doc) - 1,
					&root) == 0);
	}
	res = tnode_walk(root, in->path, &out);
	FUZZ_CHECK(res == 0 || res == -ENOENT || res == -ENOTDIR);
	want = ref_walk(root, in->path);
	FUZZ_CHECK((res == 0) == (want != NULL));
	if (res == 0) {
		const char *last;
		size_t len = in->path_len;

		FUZZ_CHECK(out == want);
		if (len && in->path[len - 1] == '/')
			len--; /* one trailing slash is allowed */
		if (len) {
			char name[TREE_NAME_MAX + 1];

			/* the member found carries the last name asked for */
			for (last = in->path + len;
			     last > in->path && last[-1] != '/'; last--)
				;
			FUZZ_CHECK(out != root);
			tnode_name(out, name);
			FUZZ_CHECK(strlen(name) ==
				   (size_t)(in->path + len - last));
			FUZZ_CHECK(!memcmp(name, last, strlen(name)));
		} else {
			FUZZ_CHECK(out == root);
		}
		/* what it found holds up: two levels below it */
		fuzz_check_tree(out, 2);
	}
	tnode_free(root);
}

/* ---- names ---- */

static void check_escape(const struct path_input *in)
{
	fuzz_check_escape(in->path);
}

static void check_unescape(const struct path_input *in)
{
	fuzz_check_unescape(in->path);
}

/* ---- list request paths ---- */

static bool url_safe(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '~' ||
		c == '%';
}

/* The cursor value in [s, e) decodes to exactly cursor. */
static void check_encoded(const char *s, const char *e, const char *cursor)
{
	size_t o = 0, clen = strlen(cursor);

	for (; s < e; s++) {
		char c = *s;

		FUZZ_CHECK(url_safe(c));
		if (c == '%') {
			FUZZ_CHECK(e - s >= 3);
			FUZZ_CHECK(tree_hexval(s[1]) >= 0 &&
				   tree_hexval(s[2]) >= 0);
			c = (char)(tree_hexval(s[1]) << 4 | tree_hexval(s[2]));
			s += 2;
		}
		FUZZ_CHECK(o < clen && cursor[o] == c);
		o++;
	}
	FUZZ_CHECK(o == clen);
}

static void check_list_path(const struct path_input *in)
{
	struct buf b = BUF_INIT((size_t)1 << 30);
	unsigned limit = in->size ? in->data[0] : 100;
	long offset = in->size > 1 ? (long)in->data[1] * 1000 : 0;
	bool total = in->size & 1;
	char head[64];
	const char *p, *amp;
	size_t hlen;

	/* with the input as the cursor */
	FUZZ_CHECK(api_list_path(limit, offset, in->path, total, &b) == 0);
	hlen = (size_t)snprintf(head, sizeof(head),
				"/v1/tasks/list?limit=%u&cursor=", limit);
	FUZZ_CHECK(b.len >= hlen && !memcmp(b.data, head, hlen));
	p = b.data + hlen;
	amp = strchr(p, '&');
	check_encoded(p, amp ? amp : b.data + b.len, in->path);
	if (total)
		FUZZ_CHECK(amp && !strcmp(amp, "&include_total=true"));
	else
		FUZZ_CHECK(!amp);
	buf_release(&b);

	/* without one: the offset, when there is one */
	FUZZ_CHECK(api_list_path(limit, offset, NULL, total, &b) == 0);
	if (offset > 0)
		snprintf(head, sizeof(head),
			 "/v1/tasks/list?limit=%u"
			 "&offset=%ld%s",
			 limit, offset, total ? "&include_total=true" : "");
	else
		snprintf(head, sizeof(head), "/v1/tasks/list?limit=%u%s", limit,
			 total ? "&include_total=true" : "");
	FUZZ_CHECK(!strcmp(buf_str(&b), head));
	buf_release(&b);
}

/* ---- query folders ---- */

#define QUERY_COMPS_MAX 16
#define QUERY_ERR_SIZE 48 /* small, so messages get cut */

/*
 * Add names[order[0..n)] to q as the filesystem does, stopping at the
 * first failure; its result.
 */
static int query_build(struct query *q, char *const *names, const size_t *order,
		       size_t n)
{
	char *err = malloc(QUERY_ERR_SIZE); /* exact: ASan sees overruns */
	size_t i;
	int res = 0;

	if (!err)
		abort();
	for (i = 0; i < n && !res; i++) {
		memset(err, 'Z', QUERY_ERR_SIZE);
		res = query_add(q, names[order[i]], err, QUERY_ERR_SIZE);
		FUZZ_CHECK(res == 0 || res == -ENOENT || res == -EINVAL);
		FUZZ_CHECK(strnlen(err, QUERY_ERR_SIZE) < QUERY_ERR_SIZE);
		/* a malformed component says why */
		FUZZ_CHECK(res != -EINVAL || err[0] != '\0');
	}
	free(err);
	return res;
}

/* The list request body of q: compact JSON, an object. malloc'd. */
static char *query_json(const struct query *q)
{
	struct json_cond *conds = calloc(q->nconds + 1, sizeof(*conds));
	struct buf b = BUF_INIT((size_t)1 << 30);
	struct list_body body;
	struct tnode *tree = NULL;
	char *s;

	if (!conds)
		abort();
	query_body(q, "COMPLETED", "thumbnail", conds, &body);
	FUZZ_CHECK(body.nconds == q->nconds);
	FUZZ_CHECK(json_list_body(&body, &b) == 0);
	FUZZ_CHECK(json_to_tree(buf_str(&b), b.len, &tree) == 0);
	FUZZ_CHECK(tree->type == TN_OBJECT);
	tnode_free(tree);
	s = buf_detach(&b, NULL);
	if (!s)
		abort();
	free(conds);
	return s;
}

/*
 * The components of the relpath as query folder names. Once they are all
 * accepted: the body is JSON; the conditions in another order give the
 * same body (settings, where the last one counts, keep their order); and
 * saying everything twice changes nothing.
 */
static void check_query(const struct path_input *in)
{
	char *names[QUERY_COMPS_MAX];
	size_t order[2 * QUERY_COMPS_MAX], n = 0, i, k = 0;
	struct query fwd, other;
	const char *p = in->path;
	char *body, *body2;

	while (*p && n < QUERY_COMPS_MAX) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len) {
			names[n] = fuzz_strndup((const uint8_t *)p, len);
			n++;
		}
		p += len + (slash != NULL);
	}
	memset(&fwd, 0, sizeof(fwd));
	memset(&other, 0, sizeof(other));
	for (i = 0; i < n; i++)
		order[i] = i;
	if (n == 0 || query_build(&fwd, names, order, n))
		goto out;
	body = query_json(&fwd);

	/* conditions last to first, then the settings in their order */
	for (i = n; i-- > 0;)
		if (names[i][0] != '@')
			order[k++] = i;
	for (i = 0; i < n; i++)
		if (names[i][0] == '@')
			order[k++] = i;
	FUZZ_CHECK(query_build(&other, names, order, n) == 0);
	body2 = query_json(&other);
	FUZZ_CHECK(!strcmp(body, body2));
	free(body2);

	/* everything again */
	for (i = 0; i < n; i++)
		order[i] = order[n + i] = i;
	query_release(&other);
	FUZZ_CHECK(query_build(&other, names, order, 2 * n) == 0);
	body2 = query_json(&other);
	FUZZ_CHECK(!strcmp(body, body2));
	free(body2);
	free(body);
out:
	query_release(&fwd);
	query_release(&other);
	for (i = 0; i < n; i++)
		free(names[i]);
}

static const path_check checks[] = {
	check_walk, check_escape, check_unescape, check_list_path, check_query,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	struct path_input in;
	char *path;
	size_t i;

	in.path_len = nul ? (size_t)(nul - data) : size;
	path = fuzz_strndup(data, in.path_len);
	in.path = path;
	in.doc = nul ? (const char *)nul + 1 : NULL;
	in.doc_len = nul ? size - in.path_len - 1 : 0;
	in.data = data;
	in.size = size;
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		checks[i](&in);
	free(path);
	return 0;
}
