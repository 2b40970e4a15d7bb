/* SPDX-License-Identifier: MIT */
/*
 * query: folder names that refine a listing (see mixpeekfs(1), QUERY
 * FOLDERS). Each name is one component; the components of a path AND
 * together. Pure string work: no I/O.
 *
 *   FIELD=VALUE  FIELD!=VALUE  FIELD:OP:VALUE   a condition
 *   not:COND                                    its negation
 *   COND|COND|...                               any of them
 *   @search=TEXT  @sort=FIELD  @sort=-FIELD  @limit=N  @case=sensitive
 */
#ifndef MIXPEEKFS_QUERY_H
#define MIXPEEKFS_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "listreq.h"

/* One condition as the API takes it (value is JSON text). */
struct qcond {
	char *field;
	const char *op; /* static string */
	char *value;
};

/* One condition component: a condition, a negated one, or an OR group. */
struct qcomp {
	char *key;	     /* canonical text, for ordering and equality */
	struct qcond *conds; /* more than one: ORed */
	size_t n;
	bool negate;
};

struct query {
	struct qcomp *comps; /* kept sorted by key, without repeats */
	size_t ncomps;
	size_t nconds; /* over all components */
	char *search;
	char *sort_field;
	bool sort_desc;
	bool case_sensitive;
	long limit; /* 0: all */
};

/*
 * Add the component name to q. 0; -ENOENT when name is not a query
 * component at all (so it may be a task id); -EINVAL when it looks like
 * one but is malformed, with err saying why.
 */
int query_add(struct query *q, const char *name, char *err, size_t size);

/*
 * The list body for q (status and type from the folder it starts in).
 * Conditions come in a canonical order, so the same components in any
 * order give the same body. b borrows from q and from conds, which must
 * have room for q->nconds.
 */
void query_body(const struct query *q, const char *status, const char *type,
		struct json_cond *conds, struct list_body *b);

void query_release(struct query *q);

#endif
