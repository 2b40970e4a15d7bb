// SPDX-License-Identifier: MIT
/*
 * Options: the range of every numeric option, the URL rules, text
 * options with control bytes, the CA file, the mountpoint and the key.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fuse_opt.h>

#include "check.h"
#include "opts.h"

static char err[512];

/*
 * opts_parse and opts_validate over "mixpeekfs" and the words given
 * (NULL-ended); the first error. o is set up here; release it after.
 */
static int run(struct options *o, ...)
{
	char *argv[16] = { (char *)"mixpeekfs" };
	struct fuse_args args;
	int argc = 1, res;
	va_list ap;

	va_start(ap, o);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	opts_init(o);
	err[0] = '\0';
	res = opts_parse(&args, o);
	if (!res)
		res = opts_validate(o, err, sizeof(err));
	fuse_opt_free_args(&args);
	return res;
}

/* Whether -o NAME=VALUE passes; the options are released again. */
static int try_value(const char *name, const char *value)
{
	char opt[128];
	struct options o;
	int res;

	snprintf(opt, sizeof(opt), "%s=%s", name, value);
	res = run(&o, "-o", opt, NULL);
	opts_release(&o);
	return res;
}

static const struct range {
	const char *name;
	const char *min, *max;	   /* the edges: accepted */
	const char *below, *above; /* just outside: refused */
} ranges[] = {
	{ "page_size", "1", "1000", "0", "1001" },
	{ "ttl", "1", "86400", "0", "86401" },
	{ "ttl_terminal", "1", "604800", "0", "604801" },
	{ "max_connections", "1", "8", "0", "9" },
	{ "timeout", "1", "3600", "0", "3601" },
	{ "connect_timeout", "1", "600", "0", "601" },
	{ "retries", "0", "10", NULL, "11" },
	{ "max_response", "1M", "1G", "1048575", "1073741825" },
	{ "cache_size", "16M", "64G", "16777215", "65G" },
	{ "wait_max", "1", "604800", "0", "604801" },
	{ "max_rate", "1", "60000", "0", "60001" },
};

static void test_ranges(void)
{
	static const char *const malformed[] = {
		"",   "-1",   "+1",  " 1",  "1 ",
		"1x", "0x10", "1.5", "1e3", "99999999999999999999999",
		NULL
	};
	size_t i, j;

	_Static_assert(sizeof(ranges) / sizeof(*ranges) == OPTS_NUMS,
		       "a range for every numeric option");
	for (i = 0; i < OPTS_NUMS; i++) {
		const struct range *r = &ranges[i];

		CHECK(try_value(r->name, r->min) == 0);
		CHECK(try_value(r->name, r->max) == 0);
		CHECK(!r->below || try_value(r->name, r->below) == -EINVAL);
		CHECK(try_value(r->name, r->above) == -EINVAL);
		if (try_value(r->name, r->above) != -EINVAL)
			fprintf(stderr, "  %s=%s was taken\n", r->name,
				r->above);
		for (j = 0; malformed[j]; j++)
			CHECK(try_value(r->name, malformed[j]) == -EINVAL);
	}
	/* the message names the option, the range and the value */
	CHECK(try_value("ttl", "0") == -EINVAL);
	CHECK(strstr(err, "ttl must be") && strstr(err, "from 1 to 86400") &&
	      strstr(err, "'0'"));
	/* sizes: K, M and G, either case */
	CHECK(try_value("cache_size", "16384K") == 0);
	CHECK(try_value("cache_size", "1g") == 0);
	CHECK(try_value("max_response", "2k") == -EINVAL);
	/* only sizes take a unit */
	CHECK(try_value("ttl", "1K") == -EINVAL);
}

static void test_values(void)
{
	struct options o;

	/* the defaults */
	CHECK(run(&o, NULL) == 0);
	CHECK(o.page_size == 1000 && o.ttl == 30 && o.ttl_terminal == 600);
	CHECK(o.max_connections == 8 && o.timeout == 30 && o.retries == 3);
	CHECK(o.connect_timeout == 10);
	CHECK(o.max_response == (size_t)64 << 20);
	CHECK(o.cache_size == (size_t)256 << 20);
	CHECK(o.wait_max == 3600);
	CHECK_STR(o.url, OPTS_DEFAULT_URL);
	CHECK_STR(o.host, "api.mixpeek.com");
	opts_release(&o);
	/* given values, the last one of a repeated option */
	CHECK(run(&o, "-o", "ttl=5,page_size=7", "-o", "ttl=6", "-o",
		  "max_response=2M", NULL) == 0);
	CHECK(o.ttl == 6 && o.page_size == 7);
	CHECK(o.max_response == (size_t)2 << 20);
	opts_release(&o);
	/* ttl_terminal is never below ttl */
	CHECK(run(&o, "-o", "ttl=100,ttl_terminal=10", NULL) == 0);
	CHECK(o.ttl_terminal == 100);
	opts_release(&o);
	/* the key is never an option */
	CHECK(run(&o, "-o", "key=secret", NULL) == -EINVAL);
	opts_release(&o);
	/* flags, and options that are FUSE's or mount(8)'s */
	CHECK(run(&o, "-o", "allow_http,debug,nofail,_netdev,ro", NULL) == 0);
	CHECK(o.allow_http && o.debug);
	opts_release(&o);
}

static void test_urls(void)
{
	static const struct {
		const char *url;
		int res;
	} cases[] = {
		{ "https://api.example.com", 0 },
		{ "https://api.example.com:8443/base", 0 },
		{ "http://127.0.0.1:8080", 0 }, /* loopback */
		{ "http://localhost:8080", 0 },
		{ "http://[::1]:8080", 0 },
		{ "http://api.example.com", -EINVAL }, /* key in clear */
		{ "ftp://api.example.com", -EINVAL },
		{ "https://user:pw@api.example.com", -EINVAL },
		{ "https://api.example.com/?q=1", -EINVAL },
		{ "https://api.example.com/#f", -EINVAL },
		{ "api.example.com", -EINVAL },
		{ "https://api.example.com/\n", -EINVAL },
		{ "", -EINVAL },
	};
	struct options o;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int res = try_value("url", cases[i].url);

		CHECK(res == cases[i].res);
		if (res != cases[i].res)
			fprintf(stderr, "  url=%s: %d (%s)\n", cases[i].url,
				res, err);
	}
	/* plain http elsewhere only when asked for */
	CHECK(run(&o, "-o", "url=http://api.example.com,allow_http", NULL) ==
	      0);
	CHECK_STR(o.host, "api.example.com");
	opts_release(&o);
	/* the URL before the mountpoint (mount.fuse3's SOURCE) */
	CHECK(run(&o, "https://a.example.com", "/mnt", NULL) == 0);
	CHECK_STR(o.host, "a.example.com");
	CHECK_STR(o.source, "https://a.example.com");
	opts_release(&o);
	/* given twice: the same is fine, two different are refused */
	CHECK(run(&o, "-o", "url=https://a.example.com",
		  "https://a.example.com", "/mnt", NULL) == 0);
	opts_release(&o);
	CHECK(run(&o, "-o", "url=https://b.example.com",
		  "https://a.example.com", "/mnt", NULL) == -EINVAL);
	CHECK(strstr(err, "two URLs") != NULL);
	opts_release(&o);
	/* a SOURCE without :// is a label: the default URL */
	CHECK(run(&o, "mixpeek", "/mnt", NULL) == 0);
	CHECK_STR(o.url, OPTS_DEFAULT_URL);
	opts_release(&o);
}

static void test_text(void)
{
	struct options o;

	CHECK(run(&o, "-o", "namespace=ns\r\nX-Evil: 1", NULL) == -EINVAL);
	CHECK(strstr(err, "namespace must not contain control") != NULL);
	opts_release(&o);
	CHECK(run(&o, "-o", "namespace=ns_1", NULL) == 0);
	opts_release(&o);
	CHECK(run(&o, "-o", "namespace=", NULL) == -EINVAL);
	CHECK(strstr(err, "namespace must not be empty") != NULL);
	opts_release(&o);
	CHECK(run(&o, "-o", "key_file=/tmp/k\x1b", NULL) == -EINVAL);
	opts_release(&o);
	CHECK(run(&o, "lab\tel", "/mnt", NULL) == -EINVAL);
	opts_release(&o);
}

static void test_ca(const char *dir)
{
	char file[256], opt[300];
	struct options o;
	FILE *f;

	snprintf(file, sizeof(file), "%s/ca.pem", dir);
	f = fopen(file, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	snprintf(opt, sizeof(opt), "ca_file=%s", file);
	CHECK(run(&o, "-o", opt, NULL) == 0);
	opts_release(&o);
	snprintf(opt, sizeof(opt), "ca_file=%s", dir); /* a folder */
	CHECK(run(&o, "-o", opt, NULL) == -EINVAL);
	opts_release(&o);
	snprintf(opt, sizeof(opt), "ca_file=%s/none.pem", dir);
	CHECK(run(&o, "-o", opt, NULL) == -ENOENT);
	opts_release(&o);
	/* from the environment, as curl reads it */
	setenv("SSL_CERT_FILE", file, 1);
	CHECK(run(&o, NULL) == 0);
	CHECK_STR(o.ca_file, file);
	opts_release(&o);
	unsetenv("SSL_CERT_FILE");
	remove(file);
}

static void test_mountpoint(const char *dir)
{
	char file[256];
	bool hides = true;
	FILE *f;

	CHECK(opts_check_mountpoint(dir, &hides, err, sizeof(err)) == 0);
	CHECK(!hides);
	snprintf(file, sizeof(file), "%s/f", dir);
	f = fopen(file, "w");
	if (f)
		fclose(f);
	CHECK(opts_check_mountpoint(dir, &hides, err, sizeof(err)) == 0);
	CHECK(hides);
	CHECK(opts_check_mountpoint(file, &hides, err, sizeof(err)) ==
	      -ENOTDIR);
	remove(file);
	CHECK(opts_check_mountpoint(file, &hides, err, sizeof(err)) == -ENOENT);
}

static void test_key(const char *dir)
{
	char file[256];
	struct options o;
	FILE *f;

	opts_init(&o);
	setenv("MIXPEEK_API_KEY", "sk_abc\n", 1);
	CHECK(opts_load_key(&o, err, sizeof(err)) == 0);
	CHECK_STR(o.key, "sk_abc");
	CHECK(getenv("MIXPEEK_API_KEY") == NULL); /* wiped */
	opts_release(&o);

	opts_init(&o);
	setenv("MIXPEEK_API_KEY", "sk abc", 1);
	CHECK(opts_load_key(&o, err, sizeof(err)) == -EINVAL);
	opts_release(&o);
	unsetenv("MIXPEEK_API_KEY");

	snprintf(file, sizeof(file), "%s/key", dir);
	f = fopen(file, "w");
	if (f) {
		fputs("sk_file\n", f);
		fclose(f);
	}
	opts_init(&o);
	o.key_file = strdup(file);
	chmod(file, 0644); /* others may read it: refused */
	CHECK(opts_load_key(&o, err, sizeof(err)) != 0);
	chmod(file, 0600);
	CHECK(opts_load_key(&o, err, sizeof(err)) == 0);
	CHECK_STR(o.key, "sk_file");
	opts_release(&o);
	remove(file);
}

int main(void)
{
	char dir[] = "/tmp/test_opts.XXXXXX";

	/* what the host has set must not change the results */
	unsetenv("CURL_CA_BUNDLE");
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
	unsetenv("MIXPEEK_API_KEY");
	curl_global_init(CURL_GLOBAL_DEFAULT); /* http_parse_base uses it */
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_ranges();
	test_values();
	test_urls();
	test_text();
	test_ca(dir);
	test_mountpoint(dir);
	test_key(dir);
	rmdir(dir);
	curl_global_cleanup();
	return check_done();
}
