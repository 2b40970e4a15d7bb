// SPDX-License-Identifier: MIT
/*
 * stats: plain counters. Statuses are kept in a small table per endpoint
 * (a server answers with a handful of codes); beyond it they count as
 * "other".
 */
#include <pthread.h>

#include "stats.h"

#define STATUS_SLOTS 24

static const char *const endpoint_names[STATS_ENDPOINTS] = { "list", "get",
							     "other" };

static const char *const counter_names[STATS_COUNTERS] = {
	"retries",
	"bytes_received",
	"cache.listings.hits",
	"cache.listings.misses",
	"cache.tasks.hits",
	"cache.tasks.misses",
	"refreshes",
	"invalidations",
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	long status; /* 0: no response */
	unsigned long n;
} by_status[STATS_ENDPOINTS][STATUS_SLOTS];	/* protected by lock */
static unsigned long overflow[STATS_ENDPOINTS]; /* protected by lock */
static unsigned long counters[STATS_COUNTERS];	/* atomic */
static int used[STATS_ENDPOINTS];		/* protected by lock */

void stats_request(enum stats_endpoint ep, long status)
{
	int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < used[ep] && by_status[ep][i].status != status; i++)
		;
	if (i < used[ep]) {
		by_status[ep][i].n++;
	} else if (used[ep] < STATUS_SLOTS) {
		by_status[ep][used[ep]].status = status;
		by_status[ep][used[ep]++].n = 1;
	} else {
		overflow[ep]++;
	}
	pthread_mutex_unlock(&lock);
}

void stats_add(enum stats_counter c, unsigned long n)
{
	__atomic_add_fetch(&counters[c], n, __ATOMIC_RELAXED);
}

unsigned long stats_get(enum stats_counter c)
{
	return __atomic_load_n(&counters[c], __ATOMIC_RELAXED);
}

int stats_render(struct buf *out)
{
	unsigned long total = 0, sum[STATS_ENDPOINTS] = { 0 };
	int ep, i, res = 0;

	pthread_mutex_lock(&lock);
	for (ep = 0; ep < STATS_ENDPOINTS; ep++) {
		sum[ep] = overflow[ep];
		for (i = 0; i < used[ep]; i++)
			sum[ep] += by_status[ep][i].n;
		total += sum[ep];
	}
	res = buf_printf(out, "requests %lu\n", total);
	for (ep = 0; ep < STATS_ENDPOINTS && !res; ep++) {
		res = buf_printf(out, "requests.%s %lu\n", endpoint_names[ep],
				 sum[ep]);
		for (i = 0; i < used[ep] && !res; i++) {
			if (by_status[ep][i].status)
				res = buf_printf(out, "requests.%s.%ld %lu\n",
						 endpoint_names[ep],
						 by_status[ep][i].status,
						 by_status[ep][i].n);
			else
				res = buf_printf(out,
						 "requests.%s.failed "
						 "%lu\n",
						 endpoint_names[ep],
						 by_status[ep][i].n);
		}
		if (!res && overflow[ep])
			res = buf_printf(out, "requests.%s.other %lu\n",
					 endpoint_names[ep], overflow[ep]);
	}
	pthread_mutex_unlock(&lock);
	for (i = 0; i < STATS_COUNTERS && !res; i++)
		res = buf_printf(out, "%s %lu\n", counter_names[i],
				 stats_get((enum stats_counter)i));
	return res;
}
