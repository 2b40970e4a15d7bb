// SPDX-License-Identifier: MIT
/*
 * mixpeekfs: mount Mixpeek's tasks as a read-only filesystem.
 * main: arguments and the lifecycle. Everything a user can get wrong
 * (options, the key, the URL) is checked before mounting, so it shows on
 * the terminal; threads start only after the fork into the background.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "fs.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "opts.h"
#include "pack.h"
#include "store.h"
#include "ttree.h"

static int fail(const char *what)
{
	fprintf(stderr, "mixpeekfs: %s\n", what);
	return 1;
}

int main(int argc, char **argv)
{
	struct http_config hc;
	struct options o;
	struct fs *fs = NULL;
	char err[512];
	int res, ret = 1;

	/*
	 * Fewer malloc arenas and a fixed mmap threshold keep the heap from
	 * fragmenting under many parsing threads (about 10% less memory).
	 */
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	json_init();
	if (opts_init(&o))
		return fail("out of memory");
	res = fs_new(argc, argv, &o, &fs);
	if (res) {
		ret = res > 0 ? 0 : 1;
		goto out;
	}
	log_set_debug(o.debug);
	if (opts_validate(&o, err, sizeof(err)) ||
	    opts_load_key(&o, err, sizeof(err))) {
		ret = fail(err);
		goto out;
	}
	hc = (struct http_config){
		.base_url = o.url,
		.api_key = o.key,
		.namespace = o.namespace,
		.connect_timeout_ms = o.connect_timeout * 1000L,
		.timeout_ms = o.timeout * 1000L,
		.retries = o.retries,
		.max_body = o.max_response,
	};
	if (http_global_init(&hc)) {
		ret = fail("cannot set up libcurl");
		goto out;
	}
	api_init(o.page_size, o.max_connections);
	if (store_init(o.ttl, o.ttl_terminal, o.cache_size)) {
		ret = fail("out of memory");
		goto out_http;
	}
	if (api_probe(err, sizeof(err))) {
		fprintf(stderr, "mixpeekfs: cannot mount %s: %s\n", o.url, err);
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
	ret = fs_run(fs) ? 1 : 0;
out_store:
	fs_free(fs);
	fs = NULL;
	ttree_cleanup();
	store_cleanup();
out_http:
	http_global_cleanup();
out:
	fs_free(fs);
	pack_cleanup();
	opts_release(&o);
	return ret;
}
