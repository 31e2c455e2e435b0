/* log.c - one line per event on stderr, filtered by level. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "avd.h"

static enum log_level level = LOG_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

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

void
log_set_level(enum log_level l)
{
	level = l;
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
	fprintf(stderr, "avd: %s: %s\n", names[l], line);
}
