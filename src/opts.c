// SPDX-License-Identifier: MIT
/*
 * opts: one fuse_opt table. String defaults are strdup'ed because
 * fuse_opt_parse frees the previous value of a %s option.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_opt.h>

#include "opts.h"

#define OPT(t, p, v) { t, offsetof(struct options, p), v }

static const struct fuse_opt opt_table[] = {
	OPT("url=%s", url, 0),
	OPT("key_file=%s", key_file, 0),
	OPT("namespace=%s", namespace, 0),
	OPT("page_size=%u", page_size, 0),
	OPT("ttl=%u", ttl, 0),
	OPT("ttl_terminal=%u", ttl_terminal, 0),
	OPT("max_connections=%u", max_connections, 0),
	OPT("timeout=%u", timeout, 0),
	OPT("connect_timeout=%u", connect_timeout, 0),
	OPT("retries=%u", retries, 0),
	OPT("max_response=%s", max_response_str, 0),
	OPT("cache_size=%s", cache_size_str, 0),
	OPT("allow_http", allow_http, 1),
	OPT("debug", debug, 1),
	/* mount(8) and fstab words that mean nothing to us */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};

int opts_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->url = strdup(OPTS_DEFAULT_URL);
	o->max_response_str = strdup("64M");
	o->cache_size_str = strdup("256M");
	o->page_size = 1000;
	o->ttl = 30;
	o->ttl_terminal = 600;
	o->max_connections = 8;
	o->timeout = 30;
	o->connect_timeout = 10;
	o->retries = 3;
	return o->url && o->max_response_str && o->cache_size_str ?
	       0 : -ENOMEM;
}

/*
 * mount.fuse3 (mount -t fuse.mixpeekfs, fstab) runs "mixpeekfs SOURCE DIR":
 * a SOURCE with :// is the API URL, any other is only a label.
 */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && o->nonopts < 2) {
		o->nonopt[o->nonopts++] = arg;
		return 0;
	}
	if (key == FUSE_OPT_KEY_OPT && !strncmp(arg, "key=", 4)) {
		fprintf(stderr, "mixpeekfs: the key is never taken on the "
			"command line; use MIXPEEK_API_KEY or -o key_file=\n");
		return -1;
	}
	if (key == FUSE_OPT_KEY_OPT && !strncmp(arg, "x-systemd.", 10))
		return 0;
	return 1;	/* keep for FUSE */
}

int opts_parse(struct fuse_args *args, struct options *o)
{
	const char *dir;

	if (fuse_opt_parse(args, o, opt_table, opt_proc))
		return -1;
	if (!o->nonopts)
		return 0;
	/* give the mountpoint back to FUSE; the source is ours */
	dir = o->nonopt[o->nonopts - 1];
	if (o->nonopts == 2) {
		o->source = o->nonopt[0];
		if (strstr(o->source, "://")) {
			free(o->source_url);
			if (!(o->source_url = strdup(o->source)))
				return -1;
		}
	}
	return fuse_opt_add_arg(args, dir) ? -1 : 0;
}

static int parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end || v == 0)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

char *opts_url_host(const char *url)
{
	const char *p = strstr(url, "://"), *end;

	p = p ? p + 3 : url;
	if (*p == '[') {
		end = strchr(p, ']');
		return end ? strndup(p + 1, (size_t)(end - p - 1)) : NULL;
	}
	end = p + strcspn(p, ":/?#");
	return strndup(p, (size_t)(end - p));
}

static int loopback(const char *host)
{
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) ||
	       !strcmp(host, "::1");
}

int opts_validate(struct options *o, char *err, size_t size)
{
	char *host;
	size_t len;

	if (o->source_url) {
		free(o->url);
		o->url = o->source_url;
		o->source_url = NULL;
	}
	if (o->ttl_terminal < o->ttl)
		o->ttl_terminal = o->ttl;	/* never less than ttl */

	if (o->page_size < 1 || o->page_size > 1000) {
		snprintf(err, size, "page_size must be 1 to 1000, not %u",
			 o->page_size);
		return -EINVAL;
	}
	if (o->max_connections < 1 || o->max_connections > 8) {
		snprintf(err, size, "max_connections must be 1 to 8, not %u",
			 o->max_connections);
		return -EINVAL;
	}
	if (o->timeout < 1 || o->connect_timeout < 1) {
		snprintf(err, size, "timeout and connect_timeout must be at "
			 "least 1 second");
		return -EINVAL;
	}
	if (o->retries > 10) {
		snprintf(err, size, "retries must be 0 to 10, not %u",
			 o->retries);
		return -EINVAL;
	}
	if (parse_size(o->max_response_str, &o->max_response)) {
		snprintf(err, size, "max_response must be a size such as 64M, "
			 "not '%s'", o->max_response_str);
		return -EINVAL;
	}
	if (parse_size(o->cache_size_str, &o->cache_size)) {
		snprintf(err, size, "cache_size must be a size such as 256M, "
			 "not '%s'", o->cache_size_str);
		return -EINVAL;
	}
	len = strlen(o->url);
	while (len > 0 && o->url[len - 1] == '/')
		o->url[--len] = '\0';
	if (strncmp(o->url, "https://", 8) && strncmp(o->url, "http://", 7)) {
		snprintf(err, size, "url must start with https:// or http://, "
			 "not '%s'", o->url);
		return -EINVAL;
	}
	host = opts_url_host(o->url);
	if (!host || !*host) {
		free(host);
		snprintf(err, size, "url '%s' has no host", o->url);
		return -EINVAL;
	}
	if (!strncmp(o->url, "http://", 7) && !loopback(host) &&
	    !o->allow_http) {
		snprintf(err, size, "refusing plain http to '%s': the key "
			 "would travel unencrypted (use https, or -o allow_http)",
			 host);
		free(host);
		return -EINVAL;
	}
	free(host);
	return 0;
}

static void strip_newline(char *s)
{
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = '\0';
}

static int read_key_file(struct options *o, char *err, size_t size)
{
	char buf[4096];
	struct stat sb;
	ssize_t n;
	int fd;

	fd = open(o->key_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb)) {
		snprintf(err, size, "cannot open key file '%s': %s",
			 o->key_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077)) {
		snprintf(err, size, "key file '%s' must be a regular file that "
			 "only its owner can read (chmod 600)", o->key_file);
		close(fd);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, size, "cannot read key file '%s': %s",
			 o->key_file, strerror(errno));
		return -EIO;
	}
	buf[n] = '\0';
	strip_newline(buf);
	o->key = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return o->key ? 0 : -ENOMEM;
}

int opts_load_key(struct options *o, char *err, size_t size)
{
	char *env = getenv("MIXPEEK_API_KEY");
	int res = 0;

	if (o->key_file) {
		res = read_key_file(o, err, size);
	} else if (env && *env) {
		o->key = strdup(env);
		strip_newline(o->key ? o->key : env);
		if (!o->key)
			res = -ENOMEM;
	}
	if (env) {
		/* clear the bytes that /proc/PID/environ shows, then the var */
		explicit_bzero(env, strlen(env));
		unsetenv("MIXPEEK_API_KEY");
	}
	if (res)
		return res;
	if (!o->key || !*o->key) {
		snprintf(err, size, "no API key: set MIXPEEK_API_KEY or use "
			 "-o key_file=PATH");
		return -EINVAL;
	}
	if (strpbrk(o->key, "\r\n")) {
		snprintf(err, size, "the API key contains a line break");
		return -EINVAL;
	}
	return 0;
}

void opts_release(struct options *o)
{
	if (o->key)
		explicit_bzero(o->key, strlen(o->key));
	free(o->key);
	free(o->url);
	free(o->source_url);
	free(o->key_file);
	free(o->namespace);
	free(o->max_response_str);
	free(o->cache_size_str);
	memset(o, 0, sizeof(*o));
}

void opts_print_help(void)
{
	printf(
"usage: mixpeekfs [options] [URL] MOUNTPOINT\n"
"\n"
"The API key comes from the environment variable MIXPEEK_API_KEY or from\n"
"-o key_file=PATH (the file must be readable by its owner only).\n"
"\n"
"mixpeekfs options:\n"
"    -o url=URL             API base (default " OPTS_DEFAULT_URL ")\n"
"    -o key_file=PATH       file holding the API key\n"
"    -o namespace=NS        send X-Namespace: NS\n"
"    -o page_size=N         tasks per list request, 1-1000 (default 1000)\n"
"    -o ttl=SECONDS         how long listings and active tasks are\n"
"                           trusted (default 30)\n"
"    -o ttl_terminal=SECONDS  how long a task in a terminal status\n"
"                           (COMPLETED, FAILED, ...) is trusted\n"
"                           (default 600, never less than ttl)\n"
"    -o max_connections=N   concurrent requests per listing, 1-8 "
"(default 8)\n"
"    -o timeout=SECONDS     bound on one request, retries included "
"(default 30)\n"
"    -o connect_timeout=S   bound on connecting (default 10)\n"
"    -o retries=N           retries on 5xx, 429 and network errors "
"(default 3)\n"
"    -o max_response=SIZE   largest response body accepted (default 64M)\n"
"    -o cache_size=SIZE     task data kept in memory before the least\n"
"                           recently used is dropped (default 256M)\n"
"    -o allow_http          allow plain http to a host that is not "
"loopback\n"
"    -o debug               log every request\n"
"\n");
}
