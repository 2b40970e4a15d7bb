// SPDX-License-Identifier: MIT
/*
 * Fuzz the text that reaches headers and logs: text_escape must leave no
 * control byte and decode back to its input; http_parse_base must only
 * accept a URL whose host it calls loopback when it really is one, and
 * never pass on a user name, password, query or fragment; and
 * http_parse_header must give only bounded numbers from any header line.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "http.h"
#include "text.h"

static int hex(char c)
{
	return c >= '0' && c <= '9'  ? c - '0' :
		c >= 'a' && c <= 'f' ? c - 'a' + 10 :
				       -1;
}

/* Decode what text_escape wrote; returns the length, or -1 if invalid. */
static long unescape(const char *in, char *out)
{
	size_t o = 0;

	while (*in) {
		if (*in != '\\') {
			out[o++] = *in++;
			continue;
		}
		switch (in[1]) {
		case 'n':
			out[o++] = '\n';
			in += 2;
			break;
		case 'r':
			out[o++] = '\r';
			in += 2;
			break;
		case 't':
			out[o++] = '\t';
			in += 2;
			break;
		case '\\':
			out[o++] = '\\';
			in += 2;
			break;
		case 'x':
			if (hex(in[2]) < 0 || hex(in[3]) < 0)
				return -1;
			out[o++] = (char)(hex(in[2]) * 16 + hex(in[3]));
			in += 4;
			break;
		default: return -1;
		}
	}
	return (long)o;
}

static void check_escape(const uint8_t *data, size_t size)
{
	size_t cap = size * 4 + 1, n;
	char *out = malloc(cap), *back = malloc(cap);
	long len;

	FUZZ_CHECK(out && back);
	n = text_escape(out, cap, (const char *)data, size);
	FUZZ_CHECK(n == strlen(out));
	{
		/* the whole-buffer form writes the same */
		struct buf b = BUF_INIT(cap);

		FUZZ_CHECK(text_escape_buf(&b, (const char *)data, size) == 0);
		FUZZ_CHECK(b.len == n && !memcmp(buf_str(&b), out, n));
		buf_release(&b);
	}
	FUZZ_CHECK(text_control_str(out) < 0);
	len = unescape(out, back);
	FUZZ_CHECK(len == (long)size);
	FUZZ_CHECK(!memcmp(back, data, size));
	/* a small buffer: a prefix, never half an escape */
	n = text_escape(out, 7, (const char *)data, size);
	FUZZ_CHECK(n < 7 && unescape(out, back) >= 0);
	FUZZ_CHECK(!memcmp(back, data, (size_t)unescape(out, back)));
	free(out);
	free(back);
}

static bool really_loopback(const char *host)
{
	char inner[64];
	struct in6_addr a6;
	struct in_addr a4;
	size_t len = strlen(host);

	if (!strcasecmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len < 3 || len > sizeof(inner) || host[0] != '[' ||
	    host[len - 1] != ']')
		return false;
	memcpy(inner, host + 1, len - 2);
	inner[len - 2] = '\0';
	return inet_pton(AF_INET6, inner, &a6) == 1 &&
		!memcmp(&a6, &in6addr_loopback, sizeof(a6));
}

static void check_url(const uint8_t *data, size_t size)
{
	char *url = fuzz_strndup(data, size), err[256];
	struct http_base b, again;

	if (http_parse_base(url, &b, err, sizeof(err))) {
		FUZZ_CHECK(text_control_str(err) < 0);
		free(url);
		return;
	}
	FUZZ_CHECK(!strncmp(b.url, "http://", 7) ||
		   !strncmp(b.url, "https://", 8));
	FUZZ_CHECK(!strpbrk(b.url, "?#"));
	FUZZ_CHECK(text_control_str(b.url) < 0);
	FUZZ_CHECK(!b.loopback || really_loopback(b.host));
	/* what was checked is what libcurl will parse again */
	FUZZ_CHECK(!http_parse_base(b.url, &again, err, sizeof(err)));
	FUZZ_CHECK(!strcmp(again.host, b.host));
	FUZZ_CHECK(again.loopback == b.loopback && again.https == b.https);
	http_base_release(&again);
	http_base_release(&b);
	free(url);
}

/*
 * A header line: the numbers it gives are -1 or whole numbers of at most
 * 12 digits, whatever the line (no overflow, no read past it).
 */
static void check_header(const uint8_t *data, size_t size)
{
	static const char *const names[] = {
		"X-RateLimit-Limit:", "X-RateLimit-Remaining:",
		"X-RateLimit-Window:", "X-RateLimit-Reset:", "Retry-After:"
	};
	struct http_limits lim;
	char *line;
	size_t i, len;

	for (i = 0; i < sizeof(names) / sizeof(*names); i++) {
		len = strlen(names[i]);
		line = malloc(len + size);
		if (!line)
			return;
		memcpy(line, names[i], len);
		memcpy(line + len, data, size);
		memset(&lim, 0, sizeof(lim));
		http_parse_header(line, len + size, &lim);
		free(line);
		if (lim.limit < -1 || lim.limit > 999999999999L ||
		    lim.remaining < -1 || lim.remaining > 999999999999L ||
		    lim.window < -1 || lim.window > 999999999999L ||
		    lim.reset < -1 || lim.reset > 999999999999.0)
			abort();
		/* a date may be far off, but it is a finite wait */
		if (!(lim.retry_after >= -1 && lim.retry_after < 1e19))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_escape(data, size);
	check_url(data, size);
	check_header(data, size);
	return 0;
}
