/* SPDX-License-Identifier: MIT */
/*
 * opts: the command line options, one fuse_opt table with defaults and
 * validation, and loading the API key (environment or key file only).
 */
#ifndef MIXPEEKFS_OPTS_H
#define MIXPEEKFS_OPTS_H

#include <stdbool.h>
#include <stddef.h>

struct fuse_args;

/* How many numeric options there are (opts.c's table of ranges). */
#define OPTS_NUMS 11

struct options {
	char *url;  /* malloc'd; as libcurl parsed it, once valid */
	char *host; /* malloc'd by opts_validate: url's host */
	char *key_file;
	char *namespace;
	char *ca_file; /* -o ca_file, CURL_CA_BUNDLE or SSL_CERT_FILE */
	char *ca_dir;  /* SSL_CERT_DIR */
	char *num_text[OPTS_NUMS]; /* numeric options as written, or NULL */
	/* set from num_text by opts_validate, else the defaults */
	unsigned page_size;
	unsigned ttl;	       /* listings and active tasks */
	unsigned ttl_terminal; /* tasks in a terminal status */
	unsigned max_connections;
	unsigned timeout; /* seconds for one request, retries included */
	unsigned connect_timeout;
	unsigned retries;
	size_t max_response; /* bytes */
	size_t cache_size;   /* bytes */
	unsigned wait_max;   /* seconds a read of .wait may wait */
	unsigned max_rate;   /* requests a minute; 0: what the API allows */
	int allow_http;
	int debug;
	char *key;	       /* loaded by opts_load_key; wiped on free */
	const char *source;    /* mount.fuse3's SOURCE (from argv), or NULL */
	const char *nonopt[2]; /* argv words that are not options */
	int nonopts;
};

#define OPTS_DEFAULT_URL "https://api.mixpeek.com"

/* Set the defaults. */
void opts_init(struct options *o);

/*
 * Parse our -o options out of args, leaving FUSE's own and the
 * mountpoint. 0 or -errno: -EINVAL for a bad command line (and when
 * libfuse ran out of memory parsing it: it does not say which), -ENOMEM.
 * libfuse or we printed why.
 */
int opts_parse(struct fuse_args *args, struct options *o);

/*
 * Parse the numeric options strictly (the whole text, digits only, in
 * range), check control bytes in text options, the URL (given once:
 * before the mountpoint or as url=, or twice the same; plain http only
 * to loopback) and the CA file. On failure err says why. 0 or -errno.
 */
int opts_validate(struct options *o, char *err, size_t size);

/*
 * The mountpoint (absolute, as FUSE resolved it) must be a folder on
 * which no mixpeekfs is mounted: a second one would hide the first.
 * 0, or -errno with err set. On 0, *hides says whether it holds entries
 * that the mount will hide.
 */
int opts_check_mountpoint(const char *path, bool *hides, char *err,
			  size_t size);

/*
 * Load the key from key_file (a regular file, links followed, owned by
 * the user or root, readable by its owner only) or from MIXPEEK_API_KEY,
 * which is then wiped from the environment. The key must be printable
 * ASCII without spaces. Never blocks (a FIFO is refused). 0 or -errno.
 */
int opts_load_key(struct options *o, char *err, size_t size);
/* Wipe and free the key (once http holds its only copy). */
void opts_forget_key(struct options *o);

void opts_release(struct options *o);

/* Our part of --help. */
void opts_print_help(void);

#endif
