// SPDX-License-Identifier: MIT
/*
 * mixpeekfs: mount Mixpeek's tasks as a read-only filesystem.
 * main: arguments and the lifecycle. Everything a user can get wrong
 * (options, the key, the URL) is checked before mounting, so it shows on
 * the terminal; threads start only after the fork into the background.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "api.h"
#include "fs.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "opts.h"
#include "pack.h"
#include "scheduler.h"
#include "store.h"
#include "text.h"
#include "ttree.h"

/*
 * Debian's libcurl loads GnuTLS (through libldap and librtmp) beside the
 * OpenSSL it uses, and GnuTLS initialises itself when loaded: its
 * priorities, random generator and PKCS #11 setup, about 1 MiB of pages
 * and 0.1 MiB of heap in a daemon that never uses it (libcurl is limited
 * to http and https, whose TLS is OpenSSL's). This is GnuTLS's documented
 * way (GNUTLS_SKIP_GLOBAL_INIT in <gnutls/gnutls.h>) to leave that to
 * gnutls_global_init(), which libldap and librtmp call before any use.
 * The linker exports it (src/meson.build) so that GnuTLS finds it.
 */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
	return 1;
}

/* One line on the terminal; what a server said in it is escaped. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	char raw[1024], line[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	text_escape(line, sizeof(line), raw, strlen(raw));
	fprintf(stderr, "mixpeekfs: %s\n", line);
	return 1;
}

int main(int argc, char **argv)
{
	struct http_config hc;
	struct options o;
	struct fs *fs = NULL;
	char err[512];
	bool hides;
	int res, ret = 1;

	mem_tune();
	json_init();
	/*
	 * libcurl would write the TLS secrets of every connection, the
	 * key's, to the file SSLKEYLOGFILE names: never.
	 */
	if (getenv("SSLKEYLOGFILE")) {
		unsetenv("SSLKEYLOGFILE");
		fprintf(stderr,
			"mixpeekfs: SSLKEYLOGFILE is ignored: the TLS "
			"secrets of the key's connections are never "
			"written\n");
	}
	opts_init(&o);
	res = fs_new(argc, argv, &o, &fs);
	if (res) {
		ret = res > 0 ? 0 : 1;
		goto out;
	}
	log_set_debug(o.debug);
	/*
	 * No core dump may hold the key: not dumpable (which also keeps
	 * other users' debuggers out), and a core size of 0 for good measure.
	 */
	prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	if (opts_validate(&o, err, sizeof(err)) ||
	    opts_check_mountpoint(fs_mountpoint(fs), &hides, err,
				  sizeof(err)) ||
	    opts_load_key(&o, err, sizeof(err))) {
		ret = fail("%s", err);
		goto out;
	}
	log_set_repeat_window(o.ttl);
	if (hides)
		log_warn("'%s' is not empty: what it holds is hidden while "
			 "mixpeekfs is mounted there",
			 fs_mountpoint(fs));
	hc = (struct http_config){
		.base_url = o.url,
		.api_key = o.key,
		.namespace = o.namespace,
		.ca_file = o.ca_file,
		.ca_dir = o.ca_dir,
		.connect_timeout_ms = o.connect_timeout * 1000L,
		.timeout_ms = o.timeout * 1000L,
		.key_retry_ms = o.ttl * 1000L,
		.retries = o.retries,
		.max_body = o.max_response,
	};
	res = http_global_init(&hc);
	opts_forget_key(&o); /* the header line is the one copy now */
	if (res) {
		ret = fail("%s",
			   res == -EINVAL ?
				   "the API key or the "
				   "namespace cannot be sent in a header" :
				   "cannot set up libcurl");
		goto out;
	}
	if (sched_init(&(struct sched_config){ o.max_connections, o.max_rate,
					       o.timeout * 1000L,
					       o.retries })) {
		ret = fail("%s", "out of memory");
		goto out_http;
	}
	api_init(o.page_size, o.max_connections);
	if (store_init(o.ttl, o.ttl_terminal, o.cache_size, NULL)) {
		ret = fail("%s", "out of memory");
		goto out_http;
	}
	res = api_probe(err, sizeof(err));
	if (res) {
		fail("cannot mount %s: %s", o.url, err);
		/* a refused key stays refused: 2 tells systemd not to retry */
		ret = res == -EACCES ? 2 : 1;
		goto out_store;
	}
	http_drop_idle();
	if (fs_mount(fs))
		goto out_store;
	log_info("serving %s%s%s at %s", o.url,
		 o.namespace ? ", namespace " : "",
		 o.namespace ? o.namespace : "", fs_mountpoint(fs));
	if (fs_daemonize(fs))
		goto out_store;
	mem_trim(); /* what start-up alone needed */
	ret = fs_run(fs) ? 1 : 0;
out_store:
	fs_free(fs);
	fs = NULL;
	sched_abort(); /* loads still fetching give up */
	ttree_cleanup();
	store_cleanup();
out_http:
	sched_cleanup();
	http_global_cleanup();
out:
	fs_free(fs);
	pack_cleanup();
	opts_release(&o);
	return ret;
}
