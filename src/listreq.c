// SPDX-License-Identifier: MIT
/*
 * listreq: a list request's model (listreq.h) copied whole, for a fetch
 * that outlives the thread that asked for it (store.c's loads).
 */
#include <stdlib.h>
#include <string.h>

#include "listreq.h"

/* One malloc'd copy of s in *dst, or NULL for NULL. false on ENOMEM. */
static bool dup_str(const char **dst, const char *s)
{
	*dst = NULL;
	if (!s)
		return true;
	*dst = strdup(s);
	return *dst != NULL;
}

struct list_body *list_body_dup(const struct list_body *b)
{
	struct list_body *c = calloc(1, sizeof(*c));
	struct json_cond *conds = NULL;
	bool ok;
	size_t i;

	if (!c)
		return NULL;
	*c = *b;
	c->conds = NULL;
	c->nconds = 0;
	ok = dup_str(&c->status, b->status) &&
		dup_str(&c->task_type, b->task_type) &&
		dup_str(&c->search, b->search) &&
		dup_str(&c->sort_field, b->sort_field) &&
		dup_str(&c->range_lo, b->range_lo) &&
		dup_str(&c->range_hi, b->range_hi);
	if (ok && b->nconds)
		ok = (conds = calloc(b->nconds, sizeof(*conds))) != NULL;
	c->conds = conds;
	for (i = 0; ok && i < b->nconds; i++) {
		conds[i] = b->conds[i];
		c->nconds++;
		ok = dup_str(&conds[i].field, b->conds[i].field) &&
			dup_str(&conds[i].op, b->conds[i].op) &&
			dup_str(&conds[i].value, b->conds[i].value);
	}
	if (!ok) {
		list_body_free(c);
		return NULL;
	}
	return c;
}

void list_body_free(struct list_body *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->nconds; i++) {
		free((char *)c->conds[i].field);
		free((char *)c->conds[i].op);
		free((char *)c->conds[i].value);
	}
	free((void *)c->conds);
	free((char *)c->status);
	free((char *)c->task_type);
	free((char *)c->search);
	free((char *)c->sort_field);
	free((char *)c->range_lo);
	free((char *)c->range_hi);
	free(c);
}
