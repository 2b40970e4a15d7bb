// SPDX-License-Identifier: MIT
/*
 * json_body: the JSON mixpeekfs writes, the other half of the json
 * module (json.c reads): the body of a list request from its model
 * (listreq.h), and quoted strings. Pure functions, thread-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"

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

/*
 * A condition; its value goes as the very JSON text query.c made of it
 * (checked here), so that a number keeps its digits: through a double,
 * 9007199254740993 would become 9.00719925474099e+15.
 */
static cJSON *cond_json(const struct json_cond *c)
{
	cJSON *o = cJSON_CreateObject(),
	      *check = cJSON_ParseWithLengthOpts(c->value, strlen(c->value),
						 NULL, 0),
	      *v = check ? cJSON_CreateRaw(c->value) : NULL;

	cJSON_Delete(check);
	if (!o || !v || !cJSON_AddStringToObject(o, "field", c->field) ||
	    !cJSON_AddStringToObject(o, "operator", c->op)) {
		cJSON_Delete(o);
		cJSON_Delete(v);
		return NULL;
	}
	cJSON_AddItemToObject(o, "value", v);
	return o;
}

/* One string condition on task_id. */
static cJSON *id_cond(const char *op, const char *value)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "field", "task_id") ||
	    !cJSON_AddStringToObject(o, "operator", op) ||
	    !cJSON_AddStringToObject(o, "value", value)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/*
 * The task_id range as a group of its own, case-sensitive (the listing's
 * order is the ids' byte order, whatever the folder's conditions say).
 */
static cJSON *range_json(const struct list_body *b)
{
	cJSON *g = cJSON_CreateObject(), *and, *c;

	and = g ? cJSON_AddArrayToObject(g, "AND") : NULL;
	if (!and)
		goto fail;
	if (b->range_lo) {
		c = id_cond(b->range_lo_incl ? "gte" : "gt", b->range_lo);
		if (!c)
			goto fail;
		cJSON_AddItemToArray(and, c);
	}
	if (b->range_hi) {
		c = id_cond("lt", b->range_hi);
		if (!c)
			goto fail;
		cJSON_AddItemToArray(and, c);
	}
	if (!cJSON_AddTrueToObject(g, "case_sensitive"))
		goto fail;
	return g;
fail:
	cJSON_Delete(g);
	return NULL;
}

/*
 * AND of plain conditions, OR groups and the task_id range; NOT of
 * negated ones.
 */
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
					cJSON_AddItemToArray(
						alts, cond_json(&b->conds[j]));
		} else {
			item = cond_json(c);
		}
		if (!item)
			goto fail;
		if (!*list)
			*list = cJSON_AddArrayToObject(f,
						       c->negate ? "NOT" :
								   "AND");
		if (!*list)
			goto fail;
		cJSON_AddItemToArray(*list, item);
	}
	if (b->range_lo || b->range_hi) {
		cJSON *r = range_json(b);

		if (!r)
			goto fail;
		if (!and)
			and = cJSON_AddArrayToObject(f, "AND");
		if (!and) {
			cJSON_Delete(r);
			goto fail;
		}
		cJSON_AddItemToArray(and, r);
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
	if (b->nconds || b->case_sensitive || b->range_lo || b->range_hi) {
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
