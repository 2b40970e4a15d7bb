// SPDX-License-Identifier: MIT
/* log: stderr or syslog, with a level prefix; thread-safe (one write). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static bool debug_on;
static bool to_syslog;

void log_set_debug(bool on)
{
	debug_on = on;
}

bool log_debugging(void)
{
	return debug_on;
}

void log_use_syslog(void)
{
	openlog("mixpeekfs", LOG_PID, LOG_DAEMON);
	to_syslog = true;
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_INFO: return "info";
	case LOG_DEBUG: return "debug";
	default: return "notice";
	}
}

void log_msg(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (prio == LOG_DEBUG && !debug_on)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (to_syslog) {
		syslog(prio, "%s", line);
		return;
	}
	n = (int)strlen(line);
	fprintf(stderr, "mixpeekfs: %s: %.*s\n", prio_name(prio), n, line);
}
