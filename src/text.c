// SPDX-License-Identifier: MIT
/* text: control bytes are refused or escaped here and nowhere else. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "text.h"

static int is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

long text_control(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (is_control((unsigned char)s[i]))
			return (long)i;
	return -1;
}

long text_control_str(const char *s)
{
	return text_control(s, strlen(s));
}

/* The escape for byte c into esc (5 bytes); its length. */
static size_t escape_byte(unsigned char c, char esc[5])
{
	switch (c) {
	case '\n': memcpy(esc, "\\n", 3); return 2;
	case '\r': memcpy(esc, "\\r", 3); return 2;
	case '\t': memcpy(esc, "\\t", 3); return 2;
	case '\\': memcpy(esc, "\\\\", 3); return 2;
	default:
		if (is_control(c))
			return (size_t)snprintf(esc, 5, "\\x%02x", c);
		esc[0] = (char)c, esc[1] = '\0';
		return 1;
	}
}

size_t text_escape(char *out, size_t size, const char *in, size_t len)
{
	size_t o = 0, i;
	char esc[5];

	if (!size)
		return 0;
	for (i = 0; i < len; i++) {
		size_t n = escape_byte((unsigned char)in[i], esc);

		if (o + n >= size)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

int text_escape_buf(struct buf *out, const char *in, size_t len)
{
	const char *run = in, *end = in + len;
	char esc[5];
	int res = 0;

	for (; in < end && !res; in++) {
		unsigned char c = (unsigned char)*in;

		if (!is_control(c) && c != '\\')
			continue;
		res = buf_add(out, run, (size_t)(in - run));
		if (!res)
			res = buf_add(out, esc, escape_byte(c, esc));
		run = in + 1;
	}
	return res ? res : buf_add(out, run, (size_t)(end - run));
}

const char *text_byte_name(unsigned char c)
{
	switch (c) {
	case ' ': return "a space";
	case '\t': return "a tab";
	case '\0': return "a NUL byte";
	case '\n': return "a line break";
	case '\r': return "a carriage return";
	default:
		return is_control(c) ? "a control character" :
			c > 0x7e     ? "a byte that is not printable ASCII" :
				       "a printable character";
	}
}
