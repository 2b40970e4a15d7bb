// SPDX-License-Identifier: MIT
/*
 * curl_floor: the memory a process pays for linking Debian's libcurl,
 * before mixpeekfs does anything (bench/README.md, "Memory"). Prints
 * Rss, Pss and Anonymous of /proc/self/smaps_rollup once loaded, and
 * after curl_global_init(CURL_GLOBAL_DEFAULT) unless the argument is
 * "load". With -DSKIP_GNUTLS_INIT, GnuTLS's implicit initialisation is
 * skipped as in mixpeekfs's main.c.
 *
 *   cc -O2 -o /tmp/curl_floor bench/curl_floor.c -lcurl && /tmp/curl_floor
 *   cc -O2 -DSKIP_GNUTLS_INIT -o /tmp/curl_floor bench/curl_floor.c -lcurl \
 *      -Wl,--export-dynamic-symbol=_gnutls_global_init_skip
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#ifdef SKIP_GNUTLS_INIT
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
	return 1;
}
#endif

static void show(const char *when)
{
	char line[256];
	long v, rss = -1, pss = -1, anon = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Rss: %ld", &v) == 1)
			rss = v;
		else if (sscanf(line, "Pss: %ld", &v) == 1)
			pss = v;
		else if (sscanf(line, "Anonymous: %ld", &v) == 1)
			anon = v;
	}
	fclose(f);
	printf("%-24s Rss %5ld KiB  Pss %5ld KiB  Anonymous %5ld KiB\n", when,
	       rss, pss, anon);
}

int main(int argc, char **argv)
{
	show("loaded");
	if (argc > 1 && !strcmp(argv[1], "load"))
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	show("after curl_global_init");
	curl_global_cleanup();
	return 0;
}
