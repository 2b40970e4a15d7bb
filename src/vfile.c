// SPDX-License-Identifier: MIT
/*
 * vfile: the files that are not task data: the mount's README, .refresh
 * in every folder (looking it up is the refresh), and .mixpeekfs/config,
 * stats and version. No libfuse calls but for fuse_pkgversion().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fs_i.h"
#include "http.h"
#include "log.h"
#include "pack.h"
#include "stats.h"

const char vfile_readme[] =
	"mixpeekfs: Mixpeek tasks as files (read-only)\n"
	"\n"
	"  tasks/<task_id>/                every task\n"
	"  by-status/<STATUS>/<task_id>/   tasks with one status\n"
	"  by-type/<task_type>/<task_id>/  tasks of one type\n"
	"\n"
	"Inside a task folder every key of the task is a file or a folder:\n"
	"strings, numbers and booleans are files holding the value and a "
	"newline;\n"
	"objects are folders; an array of scalars is a file with one element "
	"per\n"
	"line, any other array a folder with entries 0, 1, 2, ...; null keys "
	"are\n"
	"left out. task.json holds the whole task as pretty-printed JSON.\n"
	"\n"
	"Query folders: under any listing folder, a folder named after a "
	"query\n"
	"component lists the same tasks, refined. Components AND together:\n"
	"\n"
	"  FIELD=VALUE  FIELD!=VALUE     equal, not equal (FIELD may be "
	"dotted)\n"
	"  FIELD:OP:VALUE                OP: eq ne gt gte lt lte in nin "
	"contains\n"
	"                                starts_with ends_with regex exists\n"
	"                                is_null text (in/nin: a,b,c)\n"
	"  not:COND   COND|COND          negation, any of\n"
	"  @search=TEXT  @sort=FIELD  @sort=-FIELD  @limit=N  @case=sensitive\n"
	"\n"
	"Values are typed (numbers, true, false, null); \"42\" in double "
	"quotes\n"
	"is a string. %2F, %7C, %2C, %25 ... put any byte but NUL in a value.\n"
	"Examples:\n"
	"\n"
	"  ls tasks/status=FAILED/task_type=thumbnail/\n"
	"  ls by-status/FAILED/additional_data.bucket_id=bkt_products/\n"
	"  ls 'tasks/additional_data.object_count:gte:1000/not:status:in:"
	"COMPLETED,CANCELED/'\n"
	"  ls -U tasks/@sort=-created_at/@limit=20/\n"
	"  grep -l OOM tasks/@search=oom/*/description\n"
	"\n"
	"Names that cannot be file names are escaped: '%' is %25, '/' is %2F,\n"
	"'.' is %2E, '..' is %2E%2E, the empty name is %00, and a name longer "
	"than\n"
	"255 bytes keeps 200 bytes followed by %~ and a 16-digit hash.\n"
	"\n"
	"A listing, or a task that is still running, is fetched when first "
	"read\n"
	"and trusted for ttl seconds; a finished task for ttl_terminal. "
	"Reading\n"
	"<folder>/.refresh fetches that folder now; kill -HUP refreshes all.\n"
	"Times are the tasks' updated_at (else created_at, then the time a "
	"change\n"
	"was seen). .mixpeekfs/ holds stats, config and\n"
	"version. Errors: EACCES when the API rejects the key,\n"
	"ENOENT for an unknown task, EIO when the API fails or times out, "
	"EINVAL\n"
	"for a malformed query folder, EROFS for any write. See "
	"mixpeekfs(1).\n";

const char *const vfile_meta_names[VFILE_META_COUNT] = { "config", "stats",
							 "version" };

static int meta_config(struct fs *fs, struct buf *out)
{
	const struct options *o = fs->opts;

	return buf_printf(
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
	return res;
}

int vfile_meta_render(struct fs *fs, const char *name, struct buf *out)
{
	if (!strcmp(name, "config"))
		return meta_config(fs, out);
	if (!strcmp(name, "stats"))
		return meta_stats(fs, out);
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
