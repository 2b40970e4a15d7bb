// SPDX-License-Identifier: MIT
/*
 * opts: one fuse_opt table. String defaults are strdup'ed because
 * fuse_opt_parse frees the previous value of a %s option.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_opt.h>

#include "http.h"
#include "opts.h"
#include "text.h"

/* The longest API key accepted (bearer tokens are far shorter). */
#define KEY_MAX 4096

#define OPT(t, p, v) { t, offsetof(struct options, p), v }

static const struct fuse_opt opt_table[] = {
	OPT("url=%s", url, 0),
	OPT("key_file=%s", key_file, 0),
	OPT("namespace=%s", namespace, 0),
	OPT("ca_file=%s", ca_file, 0),
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

/*
 * The text options reach headers, log lines and .mixpeekfs/config: none
 * may hold a control byte (a CR LF in namespace would add a header).
 */
static int check_text(const char *name, const char *value, char *err,
		      size_t size)
{
	long at = value ? text_control_str(value) : -1;

	if (at < 0)
		return 0;
	snprintf(err, size, "%s must not contain control characters (%s at "
		 "byte %ld)", name, text_byte_name((unsigned char)value[at]),
		 at + 1);
	return -EINVAL;
}

/*
 * Open path for reading without blocking (a FIFO would hang open()),
 * following symbolic links, and check what was opened: a regular file.
 * Returns the descriptor, or -errno with err set.
 */
static int open_regular(const char *what, const char *path, struct stat *sb,
			char *err, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int res;

	if (fd < 0 || fstat(fd, sb)) {
		res = -errno;
		snprintf(err, size, "cannot open %s '%s': %s", what, path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return res;
	}
	if (!S_ISREG(sb->st_mode)) {
		snprintf(err, size, "%s '%s' is not a regular file", what,
			 path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* CA certificates: ca_file, else the variables the curl tool reads. */
static int check_ca(struct options *o, char *err, size_t size)
{
	const char *env = getenv("CURL_CA_BUNDLE");
	struct stat sb;
	int fd;

	if (!o->ca_file && !(env && *env))
		env = getenv("SSL_CERT_FILE");
	if (!o->ca_file && env && *env && !(o->ca_file = strdup(env)))
		return -ENOMEM;
	env = getenv("SSL_CERT_DIR");
	if (env && *env && !(o->ca_dir = strdup(env)))
		return -ENOMEM;
	if (check_text("ca_file", o->ca_file, err, size) ||
	    check_text("SSL_CERT_DIR", o->ca_dir, err, size))
		return -EINVAL;
	if (o->ca_file) {
		fd = open_regular("ca_file", o->ca_file, &sb, err, size);
		if (fd < 0)
			return fd;
		close(fd);
	}
	if (o->ca_dir && (stat(o->ca_dir, &sb) || !S_ISDIR(sb.st_mode))) {
		snprintf(err, size, "SSL_CERT_DIR '%s' is not a folder",
			 o->ca_dir);
		return -EINVAL;
	}
	return 0;
}

int opts_validate(struct options *o, char *err, size_t size)
{
	struct http_base base;
	int res;

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
	if (check_text("url", o->url, err, size) ||
	    check_text("namespace", o->namespace, err, size) ||
	    check_text("key_file", o->key_file, err, size) ||
	    check_text("source", o->source, err, size))
		return -EINVAL;
	res = http_parse_base(o->url, &base, err, size);
	if (res)
		return res;
	if (!base.https && !base.loopback && !o->allow_http) {
		snprintf(err, size, "refusing plain http to '%s': the key "
			 "would travel unencrypted (use https, or -o allow_http)",
			 base.host);
		http_base_release(&base);
		return -EINVAL;
	}
	free(o->url);
	o->url = base.url;
	o->host = base.host;
	return check_ca(o, err, size);
}

/*
 * An API key is printable ASCII without spaces: anything else would be
 * sent as it is and only earn a 401. One trailing newline (or CR LF) is
 * allowed and dropped. from says where the key came from.
 */
static int check_key(char *key, size_t len, const char *from, char *err,
		     size_t size)
{
	size_t i;

	if (len > 0 && key[len - 1] == '\n')
		len--;
	if (len > 0 && key[len - 1] == '\r')
		len--;
	key[len] = '\0';
	if (!len) {
		snprintf(err, size, "%s is empty", from);
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];

		if (c > 0x20 && c < 0x7f)
			continue;
		snprintf(err, size, "the API key in %s has %s at byte %zu%s: a "
			 "key is printable ASCII without spaces", from,
			 text_byte_name(c), i + 1, i == 0 ? " (its start)" :
			 i == len - 1 ? " (its end)" : "");
		return -EINVAL;
	}
	return 0;
}

/*
 * The key file: symbolic links are followed (Kubernetes secrets and
 * systemd credentials are links); what is opened must be a regular file
 * of the user's or root's that nobody else may read.
 */
static int read_key_file(struct options *o, char *err, size_t size)
{
	char buf[KEY_MAX + 3], from[PATH_MAX + 16];
	size_t len = 0;
	struct stat sb;
	ssize_t n = 0;
	int fd, res;

	fd = open_regular("key file", o->key_file, &sb, err, size);
	if (fd < 0)
		return fd;
	res = -EINVAL;
	if (sb.st_uid != geteuid() && sb.st_uid != 0)
		snprintf(err, size, "key file '%s' is owned by uid %u: it must "
			 "be owned by you (uid %u) or root", o->key_file,
			 (unsigned)sb.st_uid, (unsigned)geteuid());
	else if (sb.st_mode & 077)
		snprintf(err, size, "key file '%s' must be readable by only its "
			 "owner (it is mode %03o; chmod 600 it)", o->key_file,
			 (unsigned)(sb.st_mode & 0777));
	else
		res = 0;
	while (!res && len < sizeof(buf) &&
	       (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!res && n < 0) {
		snprintf(err, size, "cannot read key file '%s': %s",
			 o->key_file, strerror(errno));
		res = -EIO;
	} else if (!res && len > KEY_MAX + 2) {
		snprintf(err, size, "key file '%s' is too long (%lld bytes): "
			 "an API key is at most %d", o->key_file,
			 (long long)sb.st_size, KEY_MAX);
		res = -EINVAL;
	}
	if (!res) {
		buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
		snprintf(from, sizeof(from), "key file '%s'", o->key_file);
		res = check_key(buf, len, from, err, size);
	}
	if (!res && !(o->key = strdup(buf)))
		res = -ENOMEM;
	explicit_bzero(buf, sizeof(buf));
	return res;
}

int opts_load_key(struct options *o, char *err, size_t size)
{
	char *env = getenv("MIXPEEK_API_KEY");
	int res = 0;

	if (o->key_file) {
		res = read_key_file(o, err, size);
	} else if (env && *env) {
		o->key = strdup(env);
		res = !o->key ? -ENOMEM :
		      check_key(o->key, strlen(o->key), "MIXPEEK_API_KEY",
				err, size);
	} else {
		snprintf(err, size, "no API key: set MIXPEEK_API_KEY or use "
			 "-o key_file=PATH");
		res = -EINVAL;
	}
	if (env) {
		/* clear the bytes that /proc/PID/environ shows, then the var */
		explicit_bzero(env, strlen(env));
		unsetenv("MIXPEEK_API_KEY");
	}
	if (res)
		opts_forget_key(o);
	return res;
}

void opts_forget_key(struct options *o)
{
	if (o->key)
		explicit_bzero(o->key, strlen(o->key));
	free(o->key);
	o->key = NULL;
}

void opts_release(struct options *o)
{
	opts_forget_key(o);
	free(o->url);
	free(o->host);
	free(o->ca_file);
	free(o->ca_dir);
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
"    -o ca_file=PATH        trust the CA certificates in PATH (default:\n"
"                           CURL_CA_BUNDLE, SSL_CERT_FILE, the system's)\n"
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
