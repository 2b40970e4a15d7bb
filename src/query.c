// SPDX-License-Identifier: MIT
/*
 * query: parse listing-refining folder names into API conditions. Values
 * are percent-decoded after the name is split, so an escaped separator
 * (%7C for '|', %2C for ',', %3A for ':') can be part of a value; they are
 * typed (numbers, true, false and null are JSON literals) unless quoted
 * in double quotes, which always means a string.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "names.h"
#include "query.h"

static const char *const ops[] = {
	"eq",	  "ne",	     "gt",	 "gte",		"lt",	     "lte",
	"in",	  "nin",     "contains", "starts_with", "ends_with", "regex",
	"exists", "is_null", "text",	 NULL
};

static const char *find_op(const char *op, size_t len)
{
	int i;

	for (i = 0; ops[i]; i++)
		if (strlen(ops[i]) == len && !strncmp(ops[i], op, len))
			return ops[i];
	return NULL;
}

/* Percent-decode [s, s + len) into a malloc'd string; -EINVAL if bad. */
static int decode(const char *s, size_t len, char **out, char *err, size_t size)
{
	int res = tree_percent_decode(s, len, out);

	if (res == -EINVAL)
		snprintf(err, size, "bad percent-escape in '%.*s'", (int)len,
			 s);
	return res;
}

static bool is_number(const char *s)
{
	const char *p = s;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		if (!(*++p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return !*p;
}

/*
 * Append the JSON for one decoded value: typed, or a string if forced. A
 * number goes as written (9007199254740993 stays exact); one no double
 * can hold (1e400) is -EINVAL, as the API could not read it either.
 */
static int typed_value(const char *v, bool force_string, struct buf *out,
		       char *err, size_t size)
{
	size_t len = strlen(v);

	if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
		char *inner = strndup(v + 1, len - 2);
		int res = inner ? json_quote(inner, out) : -ENOMEM;

		free(inner);
		return res;
	}
	if (!force_string && is_number(v) && isinf(strtod(v, NULL))) {
		snprintf(err, size, "the number %s is too large for JSON", v);
		return -EINVAL;
	}
	if (!force_string &&
	    (is_number(v) || !strcmp(v, "true") || !strcmp(v, "false") ||
	     !strcmp(v, "null")))
		return buf_addstr(out, v);
	return json_quote(v, out);
}

/* The value [s, s + len) for op as JSON text (malloc'd). */
static int value_json(const char *op, const char *s, size_t len, char **out,
		      char *err, size_t size)
{
	bool text = !strcmp(op, "contains") || !strcmp(op, "starts_with") ||
		!strcmp(op, "ends_with") || !strcmp(op, "regex") ||
		!strcmp(op, "text");
	struct buf b = BUF_INIT(1 << 20);
	char *v = NULL;
	int res;

	if (!strcmp(op, "in") || !strcmp(op, "nin")) {
		const char *p = s, *end = s + len, *comma;

		res = buf_addch(&b, '[');
		while (!res) {
			comma = memchr(p, ',', (size_t)(end - p));
			if (!comma)
				comma = end;
			res = decode(p, (size_t)(comma - p), &v, err, size);
			if (!res)
				res = typed_value(v, false, &b, err, size);
			free(v);
			v = NULL;
			if (res || comma == end)
				break;
			res = buf_addch(&b, ',');
			p = comma + 1;
		}
		if (!res)
			res = buf_addch(&b, ']');
		goto out;
	}
	res = decode(s, len, &v, err, size);
	if (res)
		return res;
	if (!strcmp(op, "exists") || !strcmp(op, "is_null")) {
		if (strcmp(v, "true") && strcmp(v, "false")) {
			snprintf(err, size, "%s takes true or false, not '%s'",
				 op, v);
			res = -EINVAL;
		} else {
			res = buf_addstr(&b, v);
		}
	} else {
		res = typed_value(v, text, &b, err, size);
	}
	free(v);
out:
	if (res) {
		buf_release(&b);
		return res;
	}
	*out = buf_detach(&b, NULL);
	return *out ? 0 : -ENOMEM;
}

static bool field_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/*
 * One condition from [s, s + len): FIELD=V, FIELD!=V or FIELD:OP:V.
 * -ENOENT when it does not look like one.
 */
static int parse_cond(const char *s, size_t len, struct qcond *c, char *err,
		      size_t size)
{
	const char *end = s + len, *p = s, *vstart;
	const char *op = NULL;
	size_t flen;
	int res;

	while (p < end && field_char(*p))
		p++;
	flen = (size_t)(p - s);
	if (!flen || p == end)
		return -ENOENT;
	if (*p == '=') {
		op = "eq";
		vstart = p + 1;
	} else if (*p == '!' && p + 1 < end && p[1] == '=') {
		op = "ne";
		vstart = p + 2;
	} else if (*p == ':') {
		const char *o = p + 1,
			   *colon = memchr(o, ':', (size_t)(end - o));

		if (!colon)
			return -ENOENT;
		op = find_op(o, (size_t)(colon - o));
		if (!op) {
			snprintf(err, size,
				 "unknown operator '%.*s' (one of "
				 "eq ne gt gte lt lte in nin contains "
				 "starts_with ends_with regex exists is_null "
				 "text)",
				 (int)(colon - o), o);
			return -EINVAL;
		}
		vstart = colon + 1;
	} else {
		return -ENOENT;
	}
	c->op = op;
	c->field = strndup(s, flen);
	if (!c->field)
		return -ENOMEM;
	res = value_json(op, vstart, (size_t)(end - vstart), &c->value, err,
			 size);
	if (res) {
		free(c->field);
		c->field = NULL;
	}
	return res;
}

static void comp_release(struct qcomp *k)
{
	size_t i;

	for (i = 0; i < k->n; i++) {
		free(k->conds[i].field);
		free(k->conds[i].value);
	}
	free(k->conds);
	free(k->key);
}

static int cmp_cond(const void *a, const void *b)
{
	const struct qcond *x = a, *y = b;
	int c = strcmp(x->field, y->field);

	if (!c)
		c = strcmp(x->op, y->op);
	return c ? c : strcmp(x->value, y->value);
}

/* Canonical text of a component: its sorted conditions. */
static int comp_key(struct qcomp *k)
{
	struct buf b = BUF_INIT(1 << 20);
	size_t i;
	int res;

	qsort(k->conds, k->n, sizeof(*k->conds), cmp_cond);
	res = buf_addstr(&b, k->negate ? "not:" : "");
	for (i = 0; i < k->n && !res; i++)
		res = buf_printf(&b, "%s%s\x1f%s\x1f%s", i ? "|" : "",
				 k->conds[i].field, k->conds[i].op,
				 k->conds[i].value);
	if (res)
		return res;
	k->key = buf_detach(&b, NULL);
	return k->key ? 0 : -ENOMEM;
}

/* A condition component: not:C, C|C|..., or C. */
static int parse_comp(const char *name, struct qcomp *k, char *err, size_t size)
{
	const char *p = name, *bar;
	int res = 0;

	memset(k, 0, sizeof(*k));
	if (!strncmp(p, "not:", 4)) {
		k->negate = true;
		p += 4;
	}
	do {
		struct qcond *n;

		bar = strchr(p, '|');
		n = realloc(k->conds, (k->n + 1) * sizeof(*n));
		if (!n) {
			res = -ENOMEM;
			break;
		}
		k->conds = n;
		memset(&k->conds[k->n], 0, sizeof(*n));
		res = parse_cond(p, bar ? (size_t)(bar - p) : strlen(p),
				 &k->conds[k->n], err, size);
		if (res)
			break;
		k->n++;
		if (bar)
			p = bar + 1;
	} while (bar);
	if (res == -ENOENT && (k->negate || k->n > 0)) {
		snprintf(err, size, "'%s' is not a condition", name);
		res = -EINVAL;
	}
	if (!res && k->negate && k->n > 1) {
		snprintf(err, size,
			 "not: takes one condition, not an OR "
			 "group");
		res = -EINVAL;
	}
	if (!res)
		res = comp_key(k);
	if (res)
		comp_release(k);
	return res;
}

static int add_comp(struct query *q, struct qcomp *k)
{
	struct qcomp *n;
	size_t i;

	for (i = 0; i < q->ncomps; i++) {
		int c = strcmp(q->comps[i].key, k->key);

		if (!c) {
			comp_release(k); /* said twice: once is enough */
			return 0;
		}
		if (c > 0)
			break;
	}
	n = realloc(q->comps, (q->ncomps + 1) * sizeof(*n));
	if (!n) {
		comp_release(k);
		return -ENOMEM;
	}
	q->comps = n;
	memmove(&n[i + 1], &n[i], (q->ncomps - i) * sizeof(*n));
	n[i] = *k;
	q->ncomps++;
	q->nconds += k->n;
	return 0;
}

static int set_str(char **dst, const char *s, char *err, size_t size)
{
	char *v;
	int res = decode(s, strlen(s), &v, err, size);

	if (res)
		return res;
	free(*dst);
	*dst = v;
	return 0;
}

static int parse_setting(struct query *q, const char *name, char *err,
			 size_t size)
{
	char *end;

	if (!strncmp(name, "@search=", 8))
		return set_str(&q->search, name + 8, err, size);
	if (!strncmp(name, "@sort=", 6)) {
		const char *f = name + 6;
		bool desc = *f == '-';
		const char *p;

		f += desc;
		for (p = f; *p && field_char(*p); p++)
			;
		if (!*f || *p) {
			snprintf(err, size,
				 "@sort takes a field name, not "
				 "'%s'",
				 name + 6);
			return -EINVAL;
		}
		q->sort_desc = desc;
		return set_str(&q->sort_field, f, err, size);
	}
	if (!strncmp(name, "@limit=", 7)) {
		long n = strtol(name + 7, &end, 10);

		if (end == name + 7 || *end || n < 1 || n > 1000) {
			snprintf(err, size, "@limit takes 1 to 1000, not '%s'",
				 name + 7);
			return -EINVAL;
		}
		q->limit = n;
		return 0;
	}
	if (!strcmp(name, "@case=sensitive") ||
	    !strcmp(name, "@case=insensitive")) {
		q->case_sensitive = name[6] == 's';
		return 0;
	}
	snprintf(err, size,
		 "unknown setting '%s' (@search, @sort, @limit, "
		 "@case)",
		 name);
	return -EINVAL;
}

int query_add(struct query *q, const char *name, char *err, size_t size)
{
	struct qcomp k;
	int res;

	err[0] = '\0';
	if (name[0] == '@')
		return parse_setting(q, name, err, size);
	res = parse_comp(name, &k, err, size);
	return res ? res : add_comp(q, &k);
}

void query_body(const struct query *q, const char *status, const char *type,
		struct json_cond *conds, struct list_body *b)
{
	size_t i, j, n = 0;
	int group = 0;

	memset(b, 0, sizeof(*b));
	b->status = status;
	b->task_type = type;
	b->search = q->search;
	b->sort_field = q->sort_field;
	b->sort_desc = q->sort_desc;
	b->case_sensitive = q->case_sensitive;
	for (i = 0; i < q->ncomps; i++) {
		const struct qcomp *k = &q->comps[i];

		if (k->n > 1)
			group++;
		for (j = 0; j < k->n; j++, n++) {
			conds[n].field = k->conds[j].field;
			conds[n].op = k->conds[j].op;
			conds[n].value = k->conds[j].value;
			conds[n].negate = k->negate;
			conds[n].or_group = k->n > 1 ? group : 0;
		}
	}
	b->conds = conds;
	b->nconds = n;
}

void query_release(struct query *q)
{
	size_t i;

	for (i = 0; i < q->ncomps; i++)
		comp_release(&q->comps[i]);
	free(q->comps);
	free(q->search);
	free(q->sort_field);
	memset(q, 0, sizeof(*q));
}
