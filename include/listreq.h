/* SPDX-License-Identifier: MIT */
/*
 * listreq: what one listing asks the API for: a status, a task type, a
 * search, a sort and filter conditions. query.c builds it from folder
 * names, json.c turns it into a ListTasksRequest body, api.c sends it
 * and store.c keys listings on that body. Plain data: every pointer is
 * borrowed from whoever filled it in, but in a list_body_dup copy.
 */
#ifndef MIXPEEKFS_LISTREQ_H
#define MIXPEEKFS_LISTREQ_H

#include <stdbool.h>
#include <stddef.h>

/* One condition of a list filter; all conditions are ANDed. */
struct json_cond {
	const char *field;
	const char *op;	   /* eq, ne, gt, ... */
	const char *value; /* JSON text of the value */
	bool negate;	   /* goes into the NOT group */
	int or_group;	   /* >0: ORed with others of the same group */
};

struct list_body {
	const char *status;
	const char *task_type;
	const char *search;
	const char *sort_field; /* NULL: the server's order */
	bool sort_desc;
	bool case_sensitive;
	const struct json_cond *conds;
	size_t nconds;
	/*
	 * A task_id range the listing is cut to (api.c's partitioned deep
	 * listings; query folders never set it): ids above range_lo (or
	 * equal to it when range_lo_incl) and below range_hi, compared
	 * case-sensitively whatever case_sensitive says. NULL: unbounded.
	 */
	const char *range_lo;
	bool range_lo_incl;
	const char *range_hi;
};

/*
 * A copy of b that owns every string it points to (listreq.c), for a
 * fetch on another thread; NULL on ENOMEM. Free with list_body_free.
 */
struct list_body *list_body_dup(const struct list_body *b);
void list_body_free(struct list_body *c);

#endif
