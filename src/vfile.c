// SPDX-License-Identifier: MIT
/*
 * vfile: the files that are not task data: the mount's README, .refresh
 * in every folder (looking it up is the refresh), and .mixpeekfs/config,
 * stats and version. No libfuse calls but for fuse_pkgversion().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fs_i.h"
#include "http.h"
#include "log.h"
#include "pack.h"
#include "readme_text.h"
#include "scheduler.h"
#include "stats.h"

/*
 * The mount's README: mixpeekfs(1)'s sections LAYOUT to ERRORS as plain
 * text, generated at build time by man/readme.py (edit the man page).
 */
const char vfile_readme[] = VFILE_README_TEXT;

const char *const vfile_meta_names[VFILE_META_COUNT] = { "config", "stats",
							 "version" };

static int meta_config(struct fs *fs, struct buf *out)
{
	const struct options *o = fs->opts;
	int res = buf_printf(
		out,
		"url %s\nnamespace %s\nkey <redacted>\nkey_file %s\n"
		"ca_file %s\n"
		"mountpoint %s\npage_size %u\nttl %u\nttl_terminal %u\n"
		"max_connections %u\ntimeout %u\nconnect_timeout %u\n"
		"retries %u\nmax_response %zu\ncache_size %zu\n"
		"allow_http %d\ndebug %d\n",
		o->url, o->namespace ? o->namespace : "-",
		o->key_file ? o->key_file : "-", o->ca_file ? o->ca_file : "-",
		fs->cmd.mountpoint, o->page_size, o->ttl, o->ttl_terminal,
		o->max_connections, o->timeout, o->connect_timeout, o->retries,
		o->max_response, o->cache_size, o->allow_http, o->debug);

	return res ? res :
		     buf_printf(out, "wait_max %u\nmax_rate %u\n", o->wait_max,
				o->max_rate);
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static int meta_stats(struct fs *fs, struct buf *out)
{
	struct store_usage u;
	char line[1024], when[32] = "-";
	time_t t = log_last_problem(line, sizeof(line));
	struct tm tm;
	int res;

	if (t && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	store_usage(&u);
	res = stats_render(out);
	if (!res)
		res = buf_printf(
			out,
			"tasks_cached %zu\ntask_bytes %zu\ntask_bytes_max %zu\n"
			"listings_cached %zu\nlisted_tasks %zu\nlisting_bytes "
			"%zu\n"
			"nodes %zu\nnode_bytes %zu\n"
			"memory_rss %ld\nuptime %ld\nlast_error_time %s\n"
			"last_error %s\n",
			u.tasks, u.task_bytes, u.task_cap, u.listings, u.listed,
			u.listing_bytes, node_count(&fs->nodes),
			node_bytes(&fs->nodes), rss_bytes(),
			(long)(time(NULL) - fs->started), when, t ? line : "-");
	if (!res)
		res = wait_stats(fs, out); /* reads of .wait kept */
	if (!res)
		res = fop_stats(fs, out); /* requests kept for the API */
	if (!res)
		res = sched_stats(out); /* the API's limits, what waits */
	return res;
}

/* How long a READ of stats gets the text its stat rendered. */
#define STATS_KEPT_NS 1000000000

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A stat renders stats and keeps the text for the READ after it. */
static int stats_for_stat(struct fs *fs, struct buf *out)
{
	int res = meta_stats(fs, out);
	char *copy;

	if (res)
		return res;
	copy = malloc(out->len + 1);
	pthread_mutex_lock(&fs->stats_lock);
	free(fs->stats_text);
	fs->stats_text = copy;
	fs->stats_len = copy ? out->len : 0;
	fs->stats_at = mono_ns();
	if (copy)
		memcpy(copy, out->data, out->len);
	pthread_mutex_unlock(&fs->stats_lock);
	return 0;
}

/* A READ gets the text the last stat rendered, if it is recent. */
static int stats_for_read(struct fs *fs, struct buf *out)
{
	int res = 1;

	pthread_mutex_lock(&fs->stats_lock);
	if (fs->stats_text && mono_ns() - fs->stats_at <= STATS_KEPT_NS)
		res = buf_add(out, fs->stats_text, fs->stats_len);
	pthread_mutex_unlock(&fs->stats_lock);
	return res > 0 ? meta_stats(fs, out) : res;
}

void vfile_release(struct fs *fs)
{
	free(fs->stats_text);
	fs->stats_text = NULL;
}

int vfile_meta_render(struct fs *fs, const char *name, bool for_stat,
		      struct buf *out)
{
	if (!strcmp(name, "config"))
		return meta_config(fs, out);
	if (!strcmp(name, "stats"))
		return for_stat ? stats_for_stat(fs, out) :
				  stats_for_read(fs, out);
	if (!strcmp(name, "version"))
		return buf_printf(out,
				  "mixpeekfs %s\nlibfuse %s\n"
				  "libcurl %s\ncjson %s\nzstd %s\n",
				  PACKAGE_VERSION, fuse_pkgversion(),
				  http_version(), json_version(),
				  pack_version());
	return -ENOENT;
}

void vfile_refreshed_now(struct fs *fs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	__atomic_store_n(&fs->refreshed,
			 (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec,
			 __ATOMIC_RELAXED);
	stats_add(STATS_REFRESHES, 1);
}

/* What <folder>/.refresh reads: when the last refresh was done. */
int vfile_refresh_render(struct fs *fs, struct buf *out, struct timespec *ts)
{
	int64_t ns = __atomic_load_n(&fs->refreshed, __ATOMIC_RELAXED);
	time_t sec = (time_t)(ns / 1000000000);
	char when[32] = "never";
	struct tm tm;

	ts->tv_sec = sec;
	ts->tv_nsec = (long)(ns % 1000000000);
	if (ns && gmtime_r(&sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf_printf(out, "refreshed %s\n", when);
}
