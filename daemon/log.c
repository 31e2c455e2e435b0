/*
 * log.c - one line per event on stderr, filtered by level.
 *
 * Three shapes of the same line: plain text for people, JSON for
 * machines (--log-format json), and, when stderr is the journal (systemd
 * sets JOURNAL_STREAM), text with a "<N>" prefix that journald turns into
 * the entry's priority.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avd.h"

static enum log_level level = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;
static bool journal;
static const char *const names[] = { "error", "warn", "info", "debug" };
static const int priorities[] = { 3, 4, 6, 7 }; /* syslog's err..debug */

int
log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (!strcmp(s, "warning")) {
		*out = LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

int
log_parse_format(const char *s, enum log_format *out)
{
	if (!strcmp(s, "text"))
		*out = LOG_FORMAT_TEXT;
	else if (!strcmp(s, "json"))
		*out = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

void
log_set_level(enum log_level l)
{
	level = l;
}

void
log_set_format(enum log_format f)
{
	format = f;
	journal = getenv("JOURNAL_STREAM") != NULL;
}

enum log_level
log_get_level(void)
{
	return level;
}

void
log_msg(enum log_level l, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (l > level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line keeps concurrent writers' lines whole. */
	if (format == LOG_FORMAT_JSON) {
		struct timespec ts;
		struct tm tm;
		char when[48], *text, *safe;
		size_t n;
		json_t *j;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
		/* Lines may quote peers' bytes; JSON wants valid UTF-8. */
		safe = utf8_repair((const unsigned char *)line, strlen(line), &n);
		j = json_pack("{s:s, s:s, s:s}", "ts", when, "level", names[l], "msg", safe);
		text = json_dumps(j, JSON_COMPACT);
		fprintf(stderr, "%s\n", text ? text : "{}");
		free(text);
		free(safe);
		json_decref(j);
	} else if (journal) {
		fprintf(stderr, "<%d>%s\n", priorities[l], line);
	} else {
		fprintf(stderr, "avd: %s: %s\n", names[l], line);
	}
}
