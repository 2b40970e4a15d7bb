// SPDX-License-Identifier: MIT
/*
 * The control-byte rules (text.c) and the base URL as libcurl parses it
 * (http_parse_base): which hosts are loopback, what is refused.
 */
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "http.h"
#include "text.h"

static void test_control(void)
{
	CHECK(text_control_str("prod") == -1);
	CHECK(text_control_str("") == -1);
	CHECK(text_control_str("pr\r\nX: y") == 2);
	CHECK(text_control_str("\x1b[31m") == 0);
	CHECK(text_control_str("a\x7f") == 1);
	CHECK(text_control("a\0b", 3) == 1);
	CHECK(text_control_str("caf\xc3\xa9 ok") == -1); /* UTF-8 */
}

static void test_escape(void)
{
	char out[64];

	text_escape(out, sizeof(out), "a\nb", 3);
	CHECK_STR(out, "a\\nb");
	text_escape(out, sizeof(out), "\x1b[31mred\r\t\\", 11);
	CHECK_STR(out, "\\x1b[31mred\\r\\t\\\\");
	text_escape(out, sizeof(out), "n\0l", 3);
	CHECK_STR(out, "n\\x00l");
	/* cut whole escapes, never half of one */
	CHECK(text_escape(out, 4, "ab\n", 3) == 2);
	CHECK_STR(out, "ab");
	CHECK(text_escape(out, 1, "ab", 2) == 0);
	CHECK_STR(out, "");
}

static void check_url(const char *url, int want, const char *want_url,
		      bool loopback)
{
	struct http_base b;
	char err[256] = "";
	int res = http_parse_base(url, &b, err, sizeof(err));

	CHECK(res == want);
	if (res != want)
		fprintf(stderr, "  url %s: %d (%s)\n", url, res, err);
	if (res)
		return;
	CHECK_STR(b.url, want_url);
	CHECK(b.loopback == loopback);
	if (b.loopback != loopback)
		fprintf(stderr, "  url %s: host %s\n", url, b.host);
	http_base_release(&b);
}

static void check_refused(const char *url, const char *why, const char *secret)
{
	struct http_base b;
	char err[256] = "";

	CHECK(http_parse_base(url, &b, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, why) != NULL);
	if (!strstr(err, why))
		fprintf(stderr, "  url %s: '%s'\n", url, err);
	CHECK(!secret || !strstr(err, secret));
}

static void test_urls(void)
{
	check_url("http://127.0.0.1:8080", 0, "http://127.0.0.1:8080", true);
	check_url("http://127.0.0.1:8080/", 0, "http://127.0.0.1:8080", true);
	check_url("http://127.1.2.3/api//", 0, "http://127.1.2.3/api", true);
	check_url("http://localhost:1", 0, "http://localhost:1", true);
	check_url("HTTP://LocalHost:1", 0, "http://LocalHost:1", true);
	check_url("http://[::1]:9", 0, "http://[::1]:9", true);
	check_url("https://api.mixpeek.com", 0, "https://api.mixpeek.com",
		  false);
	/* names that merely look like loopback */
	check_url("http://127.evil.example/", 0, "http://127.evil.example",
		  false);
	check_url("http://127.0.0.1.nip.io:9", 0, "http://127.0.0.1.nip.io:9",
		  false);
	check_url("http://localhost.evil.example", 0,
		  "http://localhost.evil.example", false);
	check_url("http://0.0.0.0:9", 0, "http://0.0.0.0:9", false);
	check_url("http://[::ffff:10.0.0.1]", 0, "http://[::ffff:10.0.0.1]",
		  false);
	/* userinfo hides the real host: refused, the password unsaid */
	check_refused("http://localhost:x@0.0.0.0:9", "user name or password",
		      NULL);
	check_refused("http://127.0.0.1@0.0.0.0:9", "user name or password",
		      NULL);
	check_refused("http://user:pw_S3cret@127.0.0.1:9",
		      "user name or password", "pw_S3cret");
	check_refused("http://127.0.0.1:9/?x=1", "query or fragment", NULL);
	check_refused("http://127.0.0.1:9/#frag", "query or fragment", NULL);
	check_refused("ftp://127.0.0.1/", "https:// or http://", NULL);
	check_refused("127.0.0.1:9", "must start with https:// or http://",
		      NULL);
	check_refused("http://", "not a valid URL", NULL);
}

int main(void)
{
	test_control();
	test_escape();
	test_urls();
	return check_done();
}
