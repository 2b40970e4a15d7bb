// SPDX-License-Identifier: MIT
/*
 * opts: one fuse_opt table for the text options and the flags, one table
 * of the numeric options with their ranges. String defaults are not set
 * before parsing, because fuse_opt_parse frees the previous value of a %s
 * option: opts_validate fills them in.
 */
#include <ctype.h>
#include <dirent.h>
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

#define OPT(t, p, v)                              \
	{                                         \
		t, offsetof(struct options, p), v \
	}

static const struct fuse_opt opt_table[] = {
	OPT("url=%s", url, 0), OPT("key_file=%s", key_file, 0),
	OPT("namespace=%s", namespace, 0), OPT("ca_file=%s", ca_file, 0),
	OPT("allow_http", allow_http, 1), OPT("debug", debug, 1),
	/* mount(8) and fstab words that mean nothing to us */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD), FUSE_OPT_END
};

/*
 * The numeric options, taken as text (fuse_opt's %u would read -1 as
 * 4294967295 and 10x as 10) and parsed by opts_validate. The ranges are
 * written as a user would write them, and parsed by the same rules.
 */
static const struct num_opt {
	const char *name;
	size_t offset; /* of an unsigned, or of a size_t for a size */
	bool size;     /* a number of bytes, or one with K, M or G */
	const char *min, *max;
	const char *what; /* what the message asks for */
	const char *why;  /* why the minimum, said when below it */
} nums[] = {
	{ "page_size", offsetof(struct options, page_size), false, "1", "1000",
	  "a whole number", NULL },
	{ "ttl", offsetof(struct options, ttl), false, "1", "86400",
	  "a whole number of seconds",
	  "with 0, every stat would fetch a whole listing again" },
	{ "ttl_terminal", offsetof(struct options, ttl_terminal), false, "1",
	  "604800", "a whole number of seconds", NULL },
	{ "max_connections", offsetof(struct options, max_connections), false,
	  "1", "8", "a whole number", NULL },
	{ "timeout", offsetof(struct options, timeout), false, "1", "3600",
	  "a whole number of seconds", NULL },
	{ "connect_timeout", offsetof(struct options, connect_timeout), false,
	  "1", "600", "a whole number of seconds", NULL },
	{ "retries", offsetof(struct options, retries), false, "0", "10",
	  "a whole number", NULL },
	{ "max_response", offsetof(struct options, max_response), true, "1M",
	  "1G", "a size", NULL },
	{ "cache_size", offsetof(struct options, cache_size), true, "16M",
	  "64G", "a size",
	  "a smaller cache would drop tasks before they are read, and fetch "
	  "them again" },
	{ "wait_max", offsetof(struct options, wait_max), false, "1", "604800",
	  "a whole number of seconds", NULL },
	{ "max_rate", offsetof(struct options, max_rate), false, "1", "60000",
	  "a whole number of requests a minute", NULL },
};

_Static_assert(sizeof(nums) / sizeof(*nums) == OPTS_NUMS,
	       "OPTS_NUMS counts the numeric options");

void opts_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->page_size = 1000;
	o->ttl = 30;
	o->ttl_terminal = 600;
	o->max_connections = 8;
	o->timeout = 30;
	o->connect_timeout = 10;
	o->retries = 3;
	o->max_response = (size_t)64 << 20;
	o->cache_size = (size_t)256 << 20;
	o->wait_max = 3600;
}

/* An option NAME=VALUE that is numeric: keep VALUE's text. */
static int num_text(struct options *o, const char *arg)
{
	size_t i, len;

	for (i = 0; i < OPTS_NUMS; i++) {
		len = strlen(nums[i].name);
		if (strncmp(arg, nums[i].name, len) || arg[len] != '=')
			continue;
		free(o->num_text[i]);
		o->num_text[i] = strdup(arg + len + 1);
		if (o->num_text[i])
			return 0;
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -1;
	}
	return 1;
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
	if (key != FUSE_OPT_KEY_OPT)
		return 1;
	if (!strncmp(arg, "key=", 4)) {
		fprintf(stderr,
			"mixpeekfs: the key is never taken on the "
			"command line; use MIXPEEK_API_KEY or -o key_file=\n");
		return -1;
	}
	if (!strncmp(arg, "x-systemd.", 10))
		return 0;
	return num_text(o, arg); /* 1: not ours, kept for FUSE */
}

int opts_parse(struct fuse_args *args, struct options *o)
{
	if (fuse_opt_parse(args, o, opt_table, opt_proc))
		return -EINVAL;
	if (!o->nonopts)
		return 0;
	/* give the mountpoint back to FUSE; the source is ours */
	if (o->nonopts == 2)
		o->source = o->nonopt[0];
	return fuse_opt_add_arg(args, o->nonopt[o->nonopts - 1]) ? -ENOMEM : 0;
}

/*
 * The whole of s as a decimal number: digits only (no sign, no space),
 * and for a size an optional K, M or G. -EINVAL, or -ERANGE if too large.
 */
static int parse_number(const char *s, bool size, unsigned long long *out)
{
	static const char units[] = "KMG";
	const char *unit;
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	unit = size && *end ? strchr(units, toupper((unsigned char)*end)) :
			      NULL;
	if (unit) {
		shift = 10 * (unsigned)(unit - units + 1);
		end++;
	}
	if (*end)
		return -EINVAL;
	if (v > ULLONG_MAX >> shift)
		return -ERANGE;
	*out = v << shift;
	return 0;
}

/* Set one numeric option from its text, if given. 0 or -EINVAL. */
static int set_number(struct options *o, const struct num_opt *n,
		      const char *text, char *err, size_t size)
{
	unsigned long long v = 0, min = 0, max = 0;
	char *field = (char *)o + n->offset;
	int res;

	if (!text)
		return 0; /* the default */
	parse_number(n->min, n->size, &min);
	parse_number(n->max, n->size, &max);
	res = parse_number(text, n->size, &v);
	if (!res && v >= min && v <= max) {
		if (n->size)
			*(size_t *)field = (size_t)v;
		else
			*(unsigned *)field = (unsigned)v;
		return 0;
	}
	snprintf(err, size, "%s must be %s from %s to %s%s, not '%s'%s%s",
		 n->name, n->what, n->min, n->max,
		 n->size ? " (bytes, or a number with K, M or G)" : "", text,
		 !res && v < min && n->why ? ": " : "",
		 !res && v < min && n->why ? n->why : "");
	return -EINVAL;
}

/*
 * The URL: before the mountpoint (a SOURCE with ://), or url=, or the
 * default. Given both ways, the two must be the same.
 */
static int pick_url(struct options *o, char *err, size_t size)
{
	const char *source = o->source && strstr(o->source, "://") ? o->source :
								     NULL;

	if (source && o->url && strcmp(source, o->url)) {
		char a[256], b[256];

		/* shown without what may be secret: see http_url_shown */
		http_url_shown(source, a, sizeof(a));
		http_url_shown(o->url, b, sizeof(b));
		snprintf(err, size,
			 "two URLs: '%s' before the mountpoint and "
			 "url=%s; give one",
			 a, b);
		return -EINVAL;
	}
	if (source || !o->url) {
		free(o->url);
		o->url = strdup(source ? source : OPTS_DEFAULT_URL);
	}
	return o->url ? 0 : -ENOMEM;
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
	snprintf(err, size,
		 "%s must not contain control characters (%s at "
		 "byte %ld)",
		 name, text_byte_name((unsigned char)value[at]), at + 1);
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

/* Make *path (malloc'd, or NULL) absolute. 0 or -errno. */
static int absolute(char **path)
{
	char *abs;

	if (!*path || **path == '/')
		return 0;
	abs = realpath(*path, NULL);
	if (!abs)
		return -errno;
	free(*path);
	*path = abs;
	return 0;
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
	/* the daemon works in /: a relative path would name another file */
	if (absolute(&o->ca_file) || absolute(&o->ca_dir)) {
		snprintf(err, size, "cannot resolve the CA path: %s",
			 strerror(errno));
		return -EINVAL;
	}
	return 0;
}

int opts_validate(struct options *o, char *err, size_t size)
{
	struct http_base base;
	size_t i;
	int res;

	for (i = 0; i < OPTS_NUMS; i++)
		if (set_number(o, &nums[i], o->num_text[i], err, size))
			return -EINVAL;
	if (o->ttl_terminal < o->ttl)
		o->ttl_terminal = o->ttl; /* never less than ttl */
	if (check_text("url", o->url, err, size) ||
	    check_text("namespace", o->namespace, err, size) ||
	    check_text("key_file", o->key_file, err, size) ||
	    check_text("source", o->source, err, size))
		return -EINVAL;
	if (o->namespace && !*o->namespace) {
		/* an empty X-Namespace header is not "no namespace" */
		snprintf(err, size,
			 "namespace must not be empty (leave the "
			 "option out for the key's default)");
		return -EINVAL;
	}
	res = pick_url(o, err, size);
	if (res)
		return res;
	res = http_parse_base(o->url, &base, err, size);
	if (res)
		return res;
	if (!base.https && !base.loopback && !o->allow_http) {
		snprintf(err, size,
			 "refusing plain http to '%s': the key "
			 "would travel unencrypted (use https, or -o "
			 "allow_http)",
			 base.host);
		http_base_release(&base);
		return -EINVAL;
	}
	free(o->url);
	o->url = base.url;
	o->host = base.host;
	return check_ca(o, err, size);
}

/* Undo /proc/self/mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/*
 * What is mounted on path, the topmost (last) mount of /proc/self/mountinfo
 * there: its type and source, "" when nothing is. 0 or -errno.
 */
static int mounted_on(const char *path, char *type, char *source, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *save, *tok;
	size_t cap = 0;
	int i;

	*type = *source = '\0';
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - TYPE SOURCE */
		tok = strtok_r(line, " \n", &save);
		for (i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " \n", &save);
		if (!tok)
			continue;
		unescape_octal(tok);
		if (strcmp(tok, path))
			continue;
		while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-"))
			;
		tok = tok ? strtok_r(NULL, " \n", &save) : NULL;
		if (!tok)
			continue;
		unescape_octal(tok);
		snprintf(type, size, "%s", tok);
		tok = strtok_r(NULL, " \n", &save);
		if (tok)
			unescape_octal(tok);
		snprintf(source, size, "%s", tok ? tok : "");
	}
	free(line);
	fclose(f);
	return 0;
}

/* Whether the folder path holds anything (false if it cannot be read). */
static bool has_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d)))
		found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return found;
}

static const char *file_kind(mode_t mode)
{
	return S_ISREG(mode)   ? "a regular file" :
		S_ISCHR(mode)  ? "a character device" :
		S_ISBLK(mode)  ? "a block device" :
		S_ISFIFO(mode) ? "a FIFO" :
		S_ISSOCK(mode) ? "a socket" :
				 "not a folder";
}

int opts_check_mountpoint(const char *path, bool *hides, char *err, size_t size)
{
	char type[256], source[256];
	struct stat sb;
	int res;

	*hides = false;
	/* a descriptor of /dev/fuse that a privileged helper opened */
	if (!strncmp(path, "/dev/fd/", 8))
		return 0;
	res = mounted_on(path, type, source, sizeof(type));
	if (res) {
		snprintf(err, size, "cannot read /proc/self/mountinfo: %s",
			 strerror(-res));
		return res;
	}
	if (!strcmp(type, "fuse.mixpeekfs")) {
		snprintf(err, size,
			 "'%s' already has a mixpeekfs mounted on it "
			 "(%s %s), which a second one would hide: unmount it "
			 "first (fusermount3 -u %s)",
			 path, type, source, path);
		return -EBUSY;
	}
	if (stat(path, &sb)) {
		res = -errno;
		snprintf(err, size, "cannot mount on '%s': %s", path,
			 strerror(errno));
		return res;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, size,
			 "cannot mount on '%s': it is %s, not a "
			 "folder",
			 path, file_kind(sb.st_mode));
		return -ENOTDIR;
	}
	/* reading an automount point would wait for this very mount */
	*hides = strcmp(type, "autofs") && has_entries(path);
	return 0;
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
		snprintf(err, size,
			 "the API key in %s has %s at byte %zu%s: a "
			 "key is printable ASCII without spaces",
			 from, text_byte_name(c), i + 1,
			 i == 0		      ? " (its start)" :
				 i == len - 1 ? " (its end)" :
						"");
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
		snprintf(err, size,
			 "key file '%s' is owned by uid %u: it must "
			 "be owned by you (uid %u) or root",
			 o->key_file, (unsigned)sb.st_uid, (unsigned)geteuid());
	else if (sb.st_mode & 077)
		snprintf(err, size,
			 "key file '%s' must be readable by only its "
			 "owner (it is mode %03o; chmod 600 it)",
			 o->key_file, (unsigned)(sb.st_mode & 0777));
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
		snprintf(err, size,
			 "key file '%s' is too long (%lld bytes): "
			 "an API key is at most %d",
			 o->key_file, (long long)sb.st_size, KEY_MAX);
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
				check_key(o->key, strlen(o->key),
					  "MIXPEEK_API_KEY", err, size);
	} else {
		snprintf(err, size,
			 "no API key: set MIXPEEK_API_KEY or use "
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
	free(o->key_file);
	free(o->namespace);
	for (size_t i = 0; i < OPTS_NUMS; i++)
		free(o->num_text[i]);
	memset(o, 0, sizeof(*o));
}

void opts_print_help(void)
{
	printf("usage: mixpeekfs [options] [URL] MOUNTPOINT\n"
	       "\n"
	       "URL, if given, is the API base, as -o url=URL is (given both "
	       "ways, the\n"
	       "two must be the same); a first word without :// is only a "
	       "label\n"
	       "(mount(8)'s source). MOUNTPOINT must be a folder with no "
	       "mixpeekfs\n"
	       "mounted on it.\n"
	       "The API key comes from the environment variable "
	       "MIXPEEK_API_KEY or from\n"
	       "-o key_file=PATH (the file must be readable by its owner "
	       "only).\n"
	       "\n"
	       "mixpeekfs options (numbers are whole, without a sign; SIZE is "
	       "bytes or\n"
	       "a number with K, M or G):\n"
	       "    -o url=URL             API base (default " OPTS_DEFAULT_URL
	       ")\n"
	       "    -o key_file=PATH       file holding the API key\n"
	       "    -o namespace=NS        send X-Namespace: NS\n"
	       "    -o ca_file=PATH        trust the CA certificates in PATH "
	       "(default:\n"
	       "                           CURL_CA_BUNDLE, SSL_CERT_FILE, the "
	       "system's)\n"
	       "    -o page_size=N         tasks per list request, 1-1000 "
	       "(default 1000)\n"
	       "    -o ttl=SECONDS         how long listings and active tasks "
	       "are\n"
	       "                           trusted, 1-86400 (default 30)\n"
	       "    -o ttl_terminal=SECONDS  how long a task in a terminal "
	       "status\n"
	       "                           (COMPLETED, FAILED, ...) is "
	       "trusted, 1-604800\n"
	       "                           (default 600, never less than ttl)\n"
	       "    -o max_connections=N   requests in flight at once, 1-8 "
	       "(default 8)\n"
	       "    -o max_rate=N          requests a minute at most, 1-60000 "
	       "(default:\n"
	       "                           what the API allows)\n"
	       "    -o timeout=SECONDS     bound on one request on the wire, "
	       "retries\n"
	       "                           included, 1-3600 (default 30)\n"
	       "    -o connect_timeout=S   bound on connecting, 1-600 (default "
	       "10)\n"
	       "    -o retries=N           retries on 5xx, 429 and network "
	       "errors, 0-10\n"
	       "                           (default 3)\n"
	       "    -o max_response=SIZE   largest response body accepted, "
	       "1M-1G\n"
	       "                           (default 64M)\n"
	       "    -o cache_size=SIZE     memory for tasks, listings and "
	       "their "
	       "entries\n"
	       "                           before the least recently used go, "
	       "16M-64G\n"
	       "                           (default 256M)\n"
	       "    -o wait_max=SECONDS    longest a read of <task>/.wait "
	       "waits before\n"
	       "                           ETIMEDOUT, 1-604800 (default "
	       "3600)\n"
	       "    -o allow_http          allow plain http to a host that is "
	       "not "
	       "loopback\n"
	       "    -o debug               log every request\n"
	       "\n");
}
