// SPDX-License-Identifier: MIT
/*
 * names: raw names (JSON member names, task ids, statuses, types) made
 * into file names and back, and the percent-decoding that query values
 * share. Pure string work.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void tree_name_escape(const char *raw, char *out)
{
	/* worst case every byte becomes three; cut afterwards */
	size_t rawlen = strlen(raw), o = 0, cut, i;
	char stack[3 * 256], *tmp = stack;
	const char *p;

	if (!strcmp(raw, "") || !strcmp(raw, ".") || !strcmp(raw, "..")) {
		strcpy(out, !*raw ? "%00" : raw[1] ? "%2E%2E" : "%2E");
		return;
	}
	if (tree_name_reserved(raw)) {
		/* the hidden file of that name would hide it */
		snprintf(out, TREE_NAME_MAX + 1, "%%2E%s", raw + 1);
		return;
	}
	if (rawlen > 255) {
		tmp = malloc(3 * rawlen + 1);
		if (!tmp) {
			/* cannot escape in full: the hashed form needs no copy */
			snprintf(out, TREE_NAME_MAX + 1, "%%~%016llx",
				 (unsigned long long)fnv1a64(raw));
			return;
		}
	}
	for (p = raw; *p; p++) {
		if (*p == '%' || *p == '/') {
			sprintf(tmp + o, "%%%02X", (unsigned char)*p);
			o += 3;
		} else {
			tmp[o++] = *p;
		}
	}
	tmp[o] = '\0';
	if (o <= TREE_NAME_MAX) {
		memcpy(out, tmp, o + 1);
		goto out;
	}
	/* keep 200 bytes, backing off UTF-8 continuation bytes, then escapes */
	cut = 200;
	while (cut > 0 && ((unsigned char)tmp[cut] & 0xC0) == 0x80)
		cut--;
	for (i = cut >= 2 ? cut - 2 : 0; i < cut; i++)
		if (tmp[i] == '%')
			cut = i;
	memcpy(out, tmp, cut);
	snprintf(out + cut, TREE_NAME_MAX + 1 - cut, "%%~%016llx",
		 (unsigned long long)fnv1a64(raw));
out:
	if (tmp != stack)
		free(tmp);
}

bool tree_name_reserved(const char *raw)
{
	static const char *const hidden[] = { JSONL_NAME, TSV_NAME,
					      REFRESH_NAME, WAIT_NAME, NULL };
	size_t i;

	for (i = 0; hidden[i]; i++)
		if (!strcmp(raw, hidden[i]))
			return true;
	return false;
}

int tree_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int tree_percent_decode(const char *s, size_t len, char **out)
{
	char *r = malloc(len + 1);
	size_t i, o = 0;

	if (!r)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] != '%') {
			r[o++] = s[i];
			continue;
		}
		hi = i + 2 < len ? tree_hexval(s[i + 1]) : -1;
		lo = hi >= 0 ? tree_hexval(s[i + 2]) : -1;
		if (lo < 0 || (hi == 0 && lo == 0)) {
			free(r);
			return -EINVAL;
		}
		r[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	r[o] = '\0';
	*out = r;
	return 0;
}

int tree_name_unescape(const char *name, char **raw)
{
	if (strstr(name, "%~"))
		return -EINVAL;
	if (!strcmp(name, "%00")) {
		*raw = strdup("");
		return *raw ? 0 : -ENOMEM;
	}
	return tree_percent_decode(name, strlen(name), raw);
}
