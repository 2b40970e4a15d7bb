// SPDX-License-Identifier: MIT
/* text: control bytes are refused or escaped here and nowhere else. */
#include <stdio.h>
#include <string.h>

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

size_t text_escape(char *out, size_t size, const char *in, size_t len)
{
	size_t o = 0, i;
	char esc[5];

	if (!size)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t n;

		switch (c) {
		case '\n': memcpy(esc, "\\n", 3); break;
		case '\r': memcpy(esc, "\\r", 3); break;
		case '\t': memcpy(esc, "\\t", 3); break;
		case '\\': memcpy(esc, "\\\\", 3); break;
		default:
			if (is_control(c))
				snprintf(esc, sizeof(esc), "\\x%02x", c);
			else
				esc[0] = (char)c, esc[1] = '\0';
		}
		n = strlen(esc);
		if (o + n >= size)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o] = '\0';
	return o;
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
