// SPDX-License-Identifier: MIT
/*
 * json: the only user of cJSON. Values are checked with cJSON_Is* before
 * use and copied out; cJSON_GetErrorPtr is never used (not thread-safe).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "log.h"

static cJSON *parse(const char *body, size_t len)
{
	return cJSON_ParseWithLengthOpts(body, len, NULL, 0);
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

/* A record for one result object; -EINVAL when it has no usable id. */
static int task_from_item(const cJSON *item, struct task **out)
{
	const char *id, *status, *type;
	struct task *t;
	char *json;

	if (!cJSON_IsObject(item))
		return -EINVAL;
	id = str_member(item, "task_id");
	if (!id || !*id)
		return -EINVAL;
	status = str_member(item, "status");
	type = str_member(item, "task_type");
	json = cJSON_PrintUnformatted(item);
	if (!json)
		return -ENOMEM;
	t = task_new(id, status ? status : "", type ? type : "", json,
		     strlen(json));
	free(json);
	if (!t)
		return -ENOMEM;
	*out = t;
	return 0;
}

int json_parse_page(const char *body, size_t len, struct page *out)
{
	const cJSON *results, *pag, *item, *v;
	cJSON *root;
	int res = 0;

	memset(out, 0, sizeof(*out));
	out->total = -1;
	root = parse(body, len);
	if (!root)
		return -EIO;
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
	cJSON_ArrayForEach(item, results) {
		struct task *t;
		int r = task_from_item(item, &t);

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
	if (cJSON_IsObject(pag)) {
		const char *cur = str_member(pag, "next_cursor");

		if (cur && *cur && !(out->next_cursor = strdup(cur))) {
			res = -ENOMEM;
			goto out;
		}
		v = cJSON_GetObjectItemCaseSensitive(pag, "total");
		if (cJSON_IsNumber(v) && v->valuedouble >= 0)
			out->total = (long)v->valuedouble;
	}
out:
	cJSON_Delete(root);
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
	res = task_from_item(root, out);
	cJSON_Delete(root);
	return res == -EINVAL ? -EIO : res;
}

static int tree_from(const cJSON *item, const char *key, struct tnode **out)
{
	enum tnode_type type;
	struct tnode *n;
	const cJSON *c;
	char *num = NULL;
	const char *text = NULL;

	if (cJSON_IsObject(item))
		type = TN_OBJECT;
	else if (cJSON_IsArray(item))
		type = TN_ARRAY;
	else if (cJSON_IsString(item))
		type = TN_STRING, text = item->valuestring;
	else if (cJSON_IsNumber(item))
		type = TN_NUMBER;
	else if (cJSON_IsTrue(item))
		type = TN_TRUE;
	else if (cJSON_IsFalse(item))
		type = TN_FALSE;
	else
		type = TN_NULL;
	if (type == TN_NUMBER) {
		/* cJSON's own shortest round-trip form */
		num = cJSON_PrintUnformatted(item);
		if (!num)
			return -ENOMEM;
		text = num;
	}
	n = tnode_new(type, key, text);
	free(num);
	if (!n)
		return -ENOMEM;
	for (c = item->child; c && (type == TN_OBJECT || type == TN_ARRAY);
	     c = c->next) {
		struct tnode *child;
		int res = tree_from(c, type == TN_OBJECT ?
				    (c->string ? c->string : "") : NULL,
				    &child);

		if (res) {
			tnode_free(n);
			return res;
		}
		tnode_append(n, child);
	}
	*out = n;
	return 0;
}

int json_to_tree(const char *json, size_t len, struct tnode **root)
{
	cJSON *r = parse(json, len);
	int res;

	if (!r)
		return -EIO;
	res = tree_from(r, NULL, root);
	cJSON_Delete(r);
	return res;
}

int json_pretty(const char *json, size_t len, struct buf *out)
{
	cJSON *r = parse(json, len);
	char *s;
	int res;

	if (!r)
		return -EIO;
	s = cJSON_Print(r);
	cJSON_Delete(r);
	if (!s)
		return -ENOMEM;
	res = buf_addstr(out, s);
	free(s);
	return res ? res : buf_addch(out, '\n');
}

bool json_is_literal(const char *text)
{
	cJSON *v = cJSON_Parse(text);
	bool lit = v && (cJSON_IsNumber(v) || cJSON_IsBool(v) ||
			 cJSON_IsNull(v));

	cJSON_Delete(v);
	return lit;
}

int json_quote(const char *s, struct buf *out)
{
	cJSON *v = cJSON_CreateString(s);
	char *p;
	int res;

	if (!v)
		return -ENOMEM;
	p = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	if (!p)
		return -ENOMEM;
	res = buf_addstr(out, p);
	free(p);
	return res;
}

static cJSON *cond_json(const struct json_cond *c)
{
	cJSON *o = cJSON_CreateObject(), *v = parse(c->value,
						    strlen(c->value));

	if (!o || !v || !cJSON_AddStringToObject(o, "field", c->field) ||
	    !cJSON_AddStringToObject(o, "operator", c->op)) {
		cJSON_Delete(o);
		cJSON_Delete(v);
		return NULL;
	}
	cJSON_AddItemToObject(o, "value", v);
	return o;
}

/* AND of plain conditions and OR groups; NOT of negated ones. */
static cJSON *filters_json(const struct list_body *b)
{
	cJSON *f = cJSON_CreateObject(), *and = NULL, *not = NULL;
	size_t i, j;

	if (!f)
		return NULL;
	for (i = 0; i < b->nconds; i++) {
		const struct json_cond *c = &b->conds[i];
		cJSON *item, **list = c->negate ? &not : &and;

		if (c->or_group > 0) {
			/* emit each OR group once, at its first member */
			for (j = 0; j < i; j++)
				if (b->conds[j].or_group == c->or_group)
					break;
			if (j < i)
				continue;
			item = cJSON_CreateObject();
			cJSON *alts = cJSON_AddArrayToObject(item, "OR");

			for (j = i; j < b->nconds && alts; j++)
				if (b->conds[j].or_group == c->or_group)
					cJSON_AddItemToArray(alts,
						cond_json(&b->conds[j]));
		} else {
			item = cond_json(c);
		}
		if (!item)
			goto fail;
		if (!*list)
			*list = cJSON_AddArrayToObject(f, c->negate ?
						       "NOT" : "AND");
		if (!*list)
			goto fail;
		cJSON_AddItemToArray(*list, item);
	}
	if (b->case_sensitive)
		cJSON_AddTrueToObject(f, "case_sensitive");
	return f;
fail:
	cJSON_Delete(f);
	return NULL;
}

int json_list_body(const struct list_body *b, struct buf *out)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	int res = -ENOMEM;

	if (!o)
		return -ENOMEM;
	if (b->status && !cJSON_AddStringToObject(o, "status", b->status))
		goto out;
	if (b->task_type &&
	    !cJSON_AddStringToObject(o, "task_type", b->task_type))
		goto out;
	if (b->nconds || b->case_sensitive) {
		cJSON *f = filters_json(b);

		if (!f)
			goto out;
		cJSON_AddItemToObject(o, "filters", f);
	}
	if (b->sort_field) {
		cJSON *sort = cJSON_AddObjectToObject(o, "sort");

		if (!sort ||
		    !cJSON_AddStringToObject(sort, "field", b->sort_field) ||
		    !cJSON_AddStringToObject(sort, "direction",
					     b->sort_desc ? "desc" : "asc"))
			goto out;
	}
	if (b->search && !cJSON_AddStringToObject(o, "search", b->search))
		goto out;
	s = cJSON_PrintUnformatted(o);
	if (s)
		res = buf_addstr(out, s);
out:
	free(s);
	cJSON_Delete(o);
	return res;
}

void json_error_message(const char *body, size_t len, char *msg,
			size_t size)
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
