// SPDX-License-Identifier: MIT
/* log: stderr or syslog, with a level prefix; thread-safe (one write). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "text.h"

static bool debug_on;
static bool to_syslog;
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_line[LOG_LINE_MAX];	/* protected by last_lock */
static time_t last_time;	/* protected by last_lock */

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

/*
 * Every message is one line: whatever a server, a user or the
 * environment put into it, control bytes are escaped here (\n, \x1b).
 */
void log_msg(int prio, const char *fmt, ...)
{
	char raw[LOG_LINE_MAX], line[LOG_LINE_MAX];
	va_list ap;
	int n;

	if (prio == LOG_DEBUG && !debug_on)
		return;
	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	text_escape(line, sizeof(line), raw, strlen(raw));
	if (prio <= LOG_WARNING) {
		pthread_mutex_lock(&last_lock);
		memcpy(last_line, line, sizeof(line));
		last_time = time(NULL);
		pthread_mutex_unlock(&last_lock);
	}
	if (to_syslog) {
		syslog(prio, "%s", line);
		return;
	}
	n = (int)strlen(line);
	fprintf(stderr, "mixpeekfs: %s: %.*s\n", prio_name(prio), n, line);
}

time_t log_last_problem(char *line, size_t size)
{
	time_t when;

	pthread_mutex_lock(&last_lock);
	snprintf(line, size, "%s", last_line);
	when = last_time;
	pthread_mutex_unlock(&last_lock);
	return when;
}
