// SPDX-License-Identifier: MIT
/*
 * json: reading JSON (json_body.c writes it); with json_body.c the only
 * user of cJSON. Values are checked with cJSON_Is* before use and copied
 * out; cJSON_GetErrorPtr is never used (not thread-safe).
 */
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "json_i.h"
#include "log.h"
#include "names.h"

/*
 * A page makes thousands of small cJSON nodes that all go together: while
 * a thread parses one, they come from a bump arena dropped in one piece
 * (malloc and free were a fifth of the CPU of listing a folder). Other
 * threads, and this one at other times, use plain malloc.
 */
#define ARENA_CHUNK ((size_t)64 << 10) /* under the mmap threshold */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	alignas(max_align_t) char data[];
};

static _Thread_local struct chunk *arena;
static _Thread_local bool arena_on;

static void *hook_malloc(size_t n)
{
	struct chunk *c = arena;
	void *p;

	if (!arena_on)
		return malloc(n);
	n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = arena;
		c->used = 0;
		c->cap = cap;
		arena = c;
	}
	p = c->data + c->used;
	c->used += n;
	return p;
}

static void hook_free(void *p)
{
	if (!arena_on)
		free(p);
}

static void arena_drop(void)
{
	while (arena) {
		struct chunk *c = arena;

		arena = c->next;
		free(c);
	}
	arena_on = false;
}

void json_init(void)
{
	cJSON_Hooks hooks = { hook_malloc, hook_free };

	cJSON_InitHooks(&hooks);
}

/* cJSON reads \uXXXX as 0 when XXXX is 0000 or not four hex digits. */
static bool u_zero(const char *x)
{
	return !json_is_hex4(x) || !memcmp(x, "0000", 4);
}

/*
 * cJSON (1.7.15) refuses a lone UTF-16 surrogate escape ("\ud800"), which
 * JSON's grammar and the published schema allow. A copy of text with
 * each one written \ufffd (the same length: every offset holds), or NULL
 * when there is none (or no memory).
 */
static char *mend_surrogates(const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	bool in_string = false;
	char *copy = NULL;
	long u, next;

	for (; p < end; p++) {
		if (*p == '"') {
			in_string = !in_string;
			continue;
		}
		if (!in_string || *p != '\\' || p + 1 >= end)
			continue;
		if (p[1] != 'u') {
			p++; /* any other escape: its two bytes */
			continue;
		}
		u = end - p >= 6 ? json_hex4(p + 2) : -1;
		if (u >= 0xd800 && u <= 0xdbff && end - p >= 12 &&
		    p[6] == '\\' && p[7] == 'u' &&
		    (next = json_hex4(p + 8)) >= 0xdc00 && next <= 0xdfff) {
			p += 11; /* a pair */
			continue;
		}
		if (u < 0xd800 || u > 0xdfff) {
			p += 5;
			continue;
		}
		if (!copy) {
			copy = malloc(len);
			if (!copy)
				return NULL;
			memcpy(copy, text, len);
		}
		memcpy(copy + (p - text) + 2, "fffd", 4);
		p += 5;
	}
	return copy;
}

/* cJSON's parse of [text, text + len), lone surrogates mended; *end (if
 * not NULL) is where it stopped, in text. */
static cJSON *parse_end(const char *text, size_t len, const char **end)
{
	cJSON *r = cJSON_ParseWithLengthOpts(text, len, end, 0);
	const char *stop = NULL;
	char *copy;

	if (r || !(copy = mend_surrogates(text, len)))
		return r;
	r = cJSON_ParseWithLengthOpts(copy, len, &stop, 0);
	if (r && end)
		*end = text + (stop - copy);
	free(copy);
	return r;
}

static cJSON *parse(const char *body, size_t len)
{
	return parse_end(body, len, NULL);
}

void page_release(struct page *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		task_unref(p->tasks[i]);
	free(p->tasks);
	free(p->next_cursor);
	memset(p, 0, sizeof(*p));
	p->total = -1;
}

static const char *str_member(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/*
 * Finding each result's own bytes in the page, so a task is kept as the
 * API sent it instead of being printed again. The text has already been
 * parsed by cJSON, so these only skip over valid JSON; if anything looks
 * off they give NULL, and the caller prints the item instead. The
 * scanner (json_i.h) is shared with json_text.c.
 */

/* Copy valid JSON text without the whitespace between tokens; the size. */
static size_t minify(const char *p, size_t len, char *out)
{
	const char *end = p + len;
	bool in_string = false;
	size_t o = 0;

	for (; p < end; p++) {
		char c = *p;

		if (in_string) {
			out[o++] = c;
			if (c == '\\' && p + 1 < end)
				out[o++] = *++p;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
			out[o++] = c;
		} else if ((unsigned char)c > 0x20) {
			out[o++] = c;
		}
	}
	return o;
}

/* Is the key literal [key, e) the member name, as cJSON reads it? */
static bool key_is(const char *key, const char *e, const char *name)
{
	size_t len = (size_t)(e - key), nlen = strlen(name);
	cJSON *k;
	bool is;

	if (!memchr(key, '\\', len) && !memchr(key, '\0', len))
		return len == nlen + 2 && !memcmp(key + 1, name, nlen);
	/* escaped: decoded, and cut at a NUL */
	k = parse(key, len);
	is = cJSON_IsString(k) && !strcmp(k->valuestring, name);
	cJSON_Delete(k);
	return is;
}

/* Where the value of the top-level object's member name starts, or NULL. */
static const char *member_start(const char *p, const char *end,
				const char *name)
{
	p = json_doc_start(p, end);
	if (p >= end || *p++ != '{')
		return NULL;
	for (;;) {
		const char *key;
		bool found;

		p = json_skip_ws(p, end);
		if (p >= end || *p != '"')
			return NULL;
		key = p;
		p = json_string_end(p, end);
		if (!p)
			return NULL;
		found = key_is(key, p, name);
		p = json_skip_ws(p, end);
		if (p >= end || *p != ':')
			return NULL;
		p = json_skip_ws(p + 1, end);
		if (found)
			return p < end ? p : NULL;
		p = json_value_end(p, end);
		if (!p)
			return NULL;
		p = json_skip_ws(p, end);
		if (p >= end || *p != ',')
			return NULL;
		p++;
	}
}

/*
 * An ISO-8601 time as the API writes it (2026-11-29T18:31:43.123Z, or an
 * offset such as +02:00 instead of Z); 0 if s is not one.
 */
static time_t iso_time(const char *s)
{
	struct tm tm;
	const char *p;
	int off = 0, n = 0, oh, om;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (!s ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n == 0)
		return 0;
	p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
		off = (*p == '-' ? -1 : 1) * (oh * 3600 + om * 60);
	else if (*p && strcmp(p, "Z"))
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	return t > off ? t - off : 0;
}

/* The record's time from the task's updated_at or created_at. */
static void task_stamp(const cJSON *item, struct task *t)
{
	time_t when = iso_time(str_member(item, "updated_at"));

	if (when > 0 && when <= UINT32_MAX) {
		t->changed = (uint32_t)when;
		t->flags |= TASK_UPDATED_AT;
		return;
	}
	when = iso_time(str_member(item, "created_at"));
	if (when > 0 && when <= UINT32_MAX)
		t->changed = (uint32_t)when;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Whether an object names a member twice ("status" twice): its files and
 * folders would show one, task.json both, and the folders it is listed
 * in either.
 */
static bool repeats_a_key(const cJSON *item)
{
	const char **names;
	const cJSON *c;
	size_t n = 0, i;
	bool rep = false;

	for (c = item->child; c; c = c->next)
		n++;
	if (n < 2)
		return false;
	names = malloc(n * sizeof(*names));
	if (!names)
		return true; /* not checked: not taken */
	for (n = 0, c = item->child; c; c = c->next)
		names[n++] = c->string ? c->string : "";
	qsort(names, n, sizeof(*names), by_key);
	for (i = 1; i < n && !rep; i++)
		rep = !strcmp(names[i - 1], names[i]);
	free(names);
	return rep;
}

/*
 * Whether the task_id in a task's own bytes holds a NUL (\u0000): cJSON's
 * string stops there, so its name and task.json would disagree.
 */
static bool id_holds_nul(const char *raw, size_t len)
{
	const char *end = raw + len, *p = member_start(raw, end, "task_id");
	const char *e = p ? json_string_end(p, end) : NULL;

	for (; e && p < e; p++) {
		if (!*p)
			return true;
		if (*p != '\\' || p + 1 >= e)
			continue;
		/* cJSON reads a \u whose four digits are 0000, or are not
		 * all hex, as a NUL */
		if (p[1] == 'u' && (e - p < 6 || u_zero(p + 2)))
			return true;
		p++; /* the escaped byte: an escaped backslash is no escape */
	}
	return false;
}

/*
 * A record for one result object, from its own bytes [raw, raw + rawlen)
 * when known; -EINVAL when it has no usable id, names a member twice at
 * its top, or has a NUL in its id (each answer would differ).
 */
static int task_from_item(const cJSON *item, const char *raw, size_t rawlen,
			  struct task **out)
{
	const char *id, *status, *type;
	char *copy = NULL, stack[16384];
	struct task *t;

	if (!cJSON_IsObject(item))
		return -EINVAL;
	id = str_member(item, "task_id");
	if (!id || !*id || repeats_a_key(item) ||
	    (raw && id_holds_nul(raw, rawlen)))
		return -EINVAL;
	status = str_member(item, "status");
	type = str_member(item, "task_type");
	if (raw) {
		char *min = rawlen <= sizeof(stack) ? stack :
						      (copy = malloc(rawlen));

		if (!min)
			return -ENOMEM;
		rawlen = minify(raw, rawlen, min);
		raw = min;
	} else {
		/* from malloc: the arena would keep every buffer it grows */
		bool was = arena_on;

		arena_on = false;
		copy = cJSON_PrintUnformatted(item);
		arena_on = was;
		if (!copy)
			return -ENOMEM;
		raw = copy;
		rawlen = strlen(copy);
	}
	t = task_new(id, status ? status : "", type ? type : "", raw, rawlen);
	free(copy); /* malloc'd, arena or not */
	if (!t)
		return -ENOMEM;
	task_stamp(item, t);
	*out = t;
	return 0;
}

static int read_pagination(const cJSON *pag, struct page *out)
{
	const cJSON *v;
	const char *cur;

	if (!cJSON_IsObject(pag))
		return 0;
	cur = str_member(pag, "next_cursor");
	if (cur && *cur && !(out->next_cursor = strdup(cur)))
		return -ENOMEM;
	v = cJSON_GetObjectItemCaseSensitive(pag, "total");
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15)
		out->total = (long)v->valuedouble;
	return 0;
}

/*
 * A page cJSON will not take whole (say, one task nested deeper than its
 * limit of 1000) but which is complete JSON: parse the results one by one,
 * skipping those that fail, so the rest of the page is still served.
 */
static int parse_by_parts(const char *body, size_t len, struct page *out)
{
	const char *end = body + len, *p, *e;
	size_t cap = 0;
	cJSON *v;
	int res = 0;

	p = json_doc_start(body, end);
	e = p < end && *p == '{' ? json_value_end(p, end) : NULL;
	if (!e || json_skip_ws(e, end) != end)
		return -EIO; /* not even balanced: truncated or garbage */
	p = member_start(body, end, "results");
	if (!p || *p != '[')
		return -EIO;
	for (p = json_skip_ws(p + 1, end); p < end && *p != ']';) {
		struct task *t = NULL;
		int r = -EINVAL;

		e = json_value_end(p, end);
		if (!e || e == p)
			return -EIO;
		v = parse(p, (size_t)(e - p));
		/* cJSON skipped a BOM there, too */
		p = json_doc_start(p, e);
		if (v)
			r = task_from_item(v, p, (size_t)(e - p), &t);
		cJSON_Delete(v);
		if (r == -ENOMEM)
			return r;
		if (!r && out->n == cap) {
			struct task **n = realloc(out->tasks,
						  (cap = cap * 2 + 16) *
							  sizeof(*n));

			if (!n) {
				task_unref(t);
				return -ENOMEM;
			}
			out->tasks = n;
		}
		if (r)
			out->skipped++;
		else
			out->tasks[out->n++] = t;
		p = json_skip_ws(e, end);
		p = p < end && *p == ',' ? json_skip_ws(p + 1, end) : p;
	}
	p = member_start(body, end, "pagination");
	e = p ? json_value_end(p, end) : NULL;
	if (e) {
		v = parse(p, (size_t)(e - p));
		res = read_pagination(v, out);
		cJSON_Delete(v);
	}
	return res;
}

int json_parse_page(const char *body, size_t len, struct page *out)
{
	const cJSON *results, *pag, *item;
	const char *p, *end;
	cJSON *root;
	int res = 0;

	memset(out, 0, sizeof(*out));
	out->total = -1;
	arena_on = true;
	root = parse(body, len);
	if (!root) {
		arena_drop();
		res = parse_by_parts(body, len, out);
		if (res)
			page_release(out);
		return res;
	}
	results = cJSON_GetObjectItemCaseSensitive(root, "results");
	if (!cJSON_IsArray(results)) {
		res = -EIO;
		goto out;
	}
	out->tasks = calloc((size_t)cJSON_GetArraySize(results) + 1,
			    sizeof(*out->tasks));
	if (!out->tasks) {
		res = -ENOMEM;
		goto out;
	}
	end = body + len;
	p = member_start(body, end, "results");
	p = p && *p == '[' ? p + 1 : NULL;
	cJSON_ArrayForEach(item, results)
	{
		const char *raw = p ? json_skip_ws(p, end) : NULL, *e = NULL;
		struct task *t;
		int r;

		if (raw && (e = json_value_end(raw, end))) {
			p = json_skip_ws(e, end);
			p = p < end && *p == ',' ? p + 1 : p;
		} else {
			p = raw = NULL; /* lost the thread: print instead */
		}
		r = task_from_item(item, raw, raw ? (size_t)(e - raw) : 0, &t);

		if (r == -ENOMEM) {
			res = r;
			goto out;
		}
		if (r) {
			out->skipped++;
			continue;
		}
		out->tasks[out->n++] = t;
	}
	pag = cJSON_GetObjectItemCaseSensitive(root, "pagination");
	res = read_pagination(pag, out);
out:
	cJSON_Delete(root);
	arena_drop();
	if (res)
		page_release(out);
	return res;
}

int json_parse_task(const char *body, size_t len, struct task **out)
{
	cJSON *root = parse(body, len);
	int res;

	if (!root)
		return -EIO;
	{
		const char *raw = json_doc_start(body, body + len);
		const char *e = json_value_end(raw, body + len);

		res = task_from_item(root, e ? raw : NULL,
				     e ? (size_t)(e - raw) : 0, out);
	}
	cJSON_Delete(root);
	return res == -EINVAL ? -EIO : res;
}

/*
 * A task's tree is one allocation: the nodes, then their texts. cJSON
 * gives the shape, the keys and the strings; the source text, walked
 * alongside, gives each number as the API wrote it and each string's
 * length (cJSON decodes a "\u0000" to a NUL byte and goes on, so its
 * valuestring holds the whole value).
 */
struct walk {
	const char *p, *end;   /* the source, from the next token */
	struct tnode *pool;    /* the next free node */
	struct tnode **slots;  /* the next free index slot (tree_index) */
	char *strs, *strs_end; /* the free part of the text area */
};

static enum tnode_type type_of(const cJSON *item)
{
	if (cJSON_IsObject(item))
		return TN_OBJECT;
	if (cJSON_IsArray(item))
		return TN_ARRAY;
	if (cJSON_IsString(item))
		return TN_STRING;
	if (cJSON_IsNumber(item))
		return TN_NUMBER;
	if (cJSON_IsTrue(item))
		return TN_TRUE;
	if (cJSON_IsFalse(item))
		return TN_FALSE;
	return TN_NULL;
}

static size_t tree_count(const cJSON *item)
{
	const cJSON *c;
	size_t n = 1;

	for (c = item->child; c; c = c->next)
		n += tree_count(c);
	return n;
}

/* Skip whitespace, then c; false if c is not next. */
static bool take(struct walk *w, char c)
{
	w->p = json_skip_ws(w->p, w->end);
	if (w->p >= w->end || *w->p != c)
		return false;
	w->p++;
	return true;
}

/*
 * Skip whitespace and a string literal. With s, cJSON's valuestring of
 * it, set *len to the value's length: cJSON writes a NUL byte for a raw
 * NUL and for a \u it reads as 0, and goes on, so s holds the whole
 * value; counting those NULs as cJSON decodes says where it ends. Reads
 * of s stay in cJSON's buffer: the literal's room, less a byte an escape.
 */
static bool take_string(struct walk *w, const char *s, size_t *len)
{
	const char *p = json_skip_ws(w->p, w->end), *q, *e;
	size_t nuls = 0, room;

	if (p >= w->end || *p != '"' || !(e = json_string_end(p, w->end)))
		return false;
	w->p = e--; /* e: the closing quote */
	if (!s)
		return true;
	room = (size_t)(e - p - 1);
	for (q = p + 1; q < e; q++)
		if (*q == '\\')
			room--, q++;
	for (q = p + 1; q < e; q += json_unit_len(q, e))
		if (*q == '\0' || (json_unit_len(q, e) == 6 && u_zero(q + 2)))
			nuls++;
	for (*len = strnlen(s, room); nuls-- && *len < room;)
		*len += 1 + strnlen(s + *len + 1, room - *len - 1);
	return true;
}

/* Copy len bytes and a NUL into the text area; NULL if they do not fit. */
static char *copy_text(struct walk *w, const char *s, size_t len)
{
	char *p = w->strs;

	if (len >= (size_t)(w->strs_end - p))
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	w->strs += len + 1;
	return p;
}

/* The node for item, whose value is next in the source; NULL if lost. */
static struct tnode *tree_fill(const cJSON *item, const char *key, size_t index,
			       struct walk *w)
{
	struct tnode *n = w->pool++, **tail = &n->child;
	bool obj = cJSON_IsObject(item);
	const char *start;
	const cJSON *c;
	size_t i = 0;

	memset(n, 0, sizeof(*n));
	n->type = type_of(item);
	n->index = index;
	if (key && !(n->key = copy_text(w, key, strlen(key))))
		return NULL;
	if (n->type == TN_STRING) {
		if (!take_string(w, item->valuestring, &n->len))
			return NULL;
		n->text = copy_text(w, item->valuestring, n->len);
		return n->text ? n : NULL;
	}
	if (n->type != TN_OBJECT && n->type != TN_ARRAY) {
		start = w->p = json_skip_ws(w->p, w->end);
		w->p = json_token_end(start, w->end);
		if (n->type != TN_NUMBER)
			return w->p > start ? n : NULL;
		n->len = (size_t)(w->p - start);
		n->text = n->len ? copy_text(w, start, n->len) : NULL;
		return n->text ? n : NULL;
	}
	if (!take(w, obj ? '{' : '['))
		return NULL;
	for (c = item->child; c; c = c->next) {
		if ((c != item->child && !take(w, ',')) ||
		    (obj && (!take_string(w, NULL, NULL) || !take(w, ':'))))
			return NULL;
		*tail = tree_fill(c, obj ? (c->string ? c->string : "") : NULL,
				  i++, w);
		if (!*tail)
			return NULL;
		tail = &(*tail)->next;
	}
	if (!take(w, obj ? '}' : ']'))
		return NULL;
	/* repeats hidden, many members indexed: see tree_index */
	if (obj && tree_index(n, w->slots))
		return NULL;
	w->slots += n->nidx;
	return n;
}

int json_to_tree(const char *json, size_t len, struct tnode **root)
{
	struct walk w = { 0 };
	struct tnode *pool = NULL;
	size_t nodes = 0;
	cJSON *r;
	int res = -EIO;

	arena_on = true; /* the cJSON tree lives only in here */
	r = parse_end(json, len, &w.end);
	if (r) {
		nodes = tree_count(r);
		/*
		 * Each text comes from its own stretch of the source and is
		 * no longer than it (a number's NUL may take the byte after
		 * it): len + 1 bytes hold them all.
		 */
		pool = malloc(nodes * (sizeof(*pool) + sizeof(*w.slots)) + len +
			      1);
		res = pool ? 0 : -ENOMEM;
	}
	if (pool) {
		w.p = json_doc_start(json, w.end);
		w.pool = pool;
		/* a slot per node at most: each indexes one member */
		w.slots = (struct tnode **)(pool + nodes);
		w.strs = (char *)(w.slots + nodes);
		w.strs_end = w.strs + len + 1;
		*root = tree_fill(r, NULL, 0, &w);
		if (!*root) {
			/* cJSON took what the walk could not follow: a bug */
			free(pool);
			res = -EIO;
		}
	}
	cJSON_Delete(r);
	arena_drop();
	return res;
}

const char *json_version(void)
{
	return cJSON_Version();
}

bool json_is_literal(const char *text)
{
	cJSON *v = cJSON_Parse(text);
	bool lit = v &&
		(cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v));

	cJSON_Delete(v);
	return lit;
}

void json_error_message(const char *body, size_t len, char *msg, size_t size)
{
	const cJSON *err, *detail, *first;
	const char *m = NULL;
	cJSON *root;

	msg[0] = '\0';
	root = parse(body, len);
	if (!root)
		return;
	err = cJSON_GetObjectItemCaseSensitive(root, "error");
	detail = cJSON_GetObjectItemCaseSensitive(root, "detail");
	if (cJSON_IsObject(err))
		m = str_member(err, "message");
	else if (cJSON_IsString(err))
		m = err->valuestring;
	else if (cJSON_IsString(detail))
		m = detail->valuestring;
	else if (cJSON_IsArray(detail) &&
		 (first = cJSON_GetArrayItem(detail, 0)))
		m = str_member(first, "msg");
	if (m)
		snprintf(msg, size, "%s", m);
	cJSON_Delete(root);
}

void json_error_detail(const char *body, size_t len, const char *key, char *out,
		       size_t size)
{
	const cJSON *err, *details, *v;
	cJSON *root;

	out[0] = '\0';
	root = parse(body, len);
	if (!root)
		return;
	err = cJSON_GetObjectItemCaseSensitive(root, "error");
	details = cJSON_IsObject(err) ?
		cJSON_GetObjectItemCaseSensitive(err, "details") :
		NULL;
	v = cJSON_IsObject(details) ?
		cJSON_GetObjectItemCaseSensitive(details, key) :
		NULL;
	if (cJSON_IsString(v))
		snprintf(out, size, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(out, size, "%g", v->valuedouble);
	cJSON_Delete(root);
}
