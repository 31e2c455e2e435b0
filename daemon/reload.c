/*
 * reload.c - SIGHUP: the configuration is read again, from the same
 * config file and command line, and whatever can change in a running
 * daemon changes: log level and format, allowed origins, timeouts and
 * limits, the UI directories, and the list of backends.  What cannot
 * (the listening address, the token) is reported, not silently ignored.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "avd.h"

static int saved_argc;
static char **saved_argv;

void
reload_init(int argc, char **argv)
{
	saved_argc = argc;
	saved_argv = argv;
}

static bool
str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static bool
origins_differ(const struct ptrvec *a, const struct ptrvec *b)
{
	if (a->n != b->n)
		return true;
	for (uint32_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]))
			return true;
	return false;
}

/* Join the strings of array a with ", " into buf. */
static const char *
list(json_t *a, char *buf, size_t size)
{
	size_t i, n = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(a, i, v)
		n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s",
				      i ? ", " : "", json_string_value(v));
	return buf;
}

void
reload_config(struct config *cfg)
{
	struct config next;
	struct avd_err err = { 0 };
	json_t *applied = json_array(), *restart = json_array(), *bk = json_object();
	char a[512], b[512];

	config_defaults(&next);
	if (config_parse_args(&next, saved_argc, saved_argv, &err) != 0) {
		log_error("reload: %s; the running configuration stays",
			  err.message[0] ? err.message : "the configuration is invalid");
		err_clear(&err);
		config_free(&next);
		json_decref(applied), json_decref(restart), json_decref(bk);
		return;
	}
	/* These are bound to the listener or to clients' credentials. */
	if (str_differs(next.listen, cfg->listen) || next.port != cfg->port ||
	    next.allow_remote != cfg->allow_remote)
		json_array_append_new(restart, json_string("listen/port"));
	if (next.no_auth != cfg->no_auth ||
	    ((next.token || next.token_file) && str_differs(next.token, cfg->token)))
		json_array_append_new(restart, json_string("token"));

#define LIVE(field, name)                                                     \
	do {                                                                  \
		if (next.field != cfg->field) {                               \
			cfg->field = next.field;                              \
			json_array_append_new(applied, json_string(name));    \
		}                                                             \
	} while (0)
	LIVE(log_level, "log_level");
	LIVE(log_format, "log_format");
	LIVE(call_timeout_ms, "call_timeout_ms");
	LIVE(heartbeat_interval_ms, "heartbeat_interval_ms");
	LIVE(heartbeat_timeout_ms, "heartbeat_timeout_ms");
	LIVE(hello_timeout_ms, "hello_timeout_ms");
	LIVE(max_message_bytes, "max_message_bytes");
	LIVE(max_queue_bytes, "max_queue_bytes");
	LIVE(max_pending_calls, "max_pending_calls");
	LIVE(max_sessions, "max_sessions");
	LIVE(backend_fail_fast, "backend_fail_fast");
#undef LIVE
	log_set_level(cfg->log_level);
	log_set_format(cfg->log_format);
	if (origins_differ(&next.allow_origins, &cfg->allow_origins)) {
		struct ptrvec tmp = cfg->allow_origins;
		cfg->allow_origins = next.allow_origins;
		next.allow_origins = tmp;
		json_array_append_new(applied, json_string("allow_origin"));
	}
	if (str_differs(next.ui_dir, cfg->ui_dir)) {
		char *tmp = cfg->ui_dir;
		cfg->ui_dir = next.ui_dir;
		next.ui_dir = tmp;
		json_array_append_new(applied, json_string("ui"));
	}
	if (str_differs(next.client_dir, cfg->client_dir)) {
		char *tmp = cfg->client_dir;
		cfg->client_dir = next.client_dir;
		next.client_dir = tmp;
		json_array_append_new(applied, json_string("client_dir"));
	}
	backend_reconcile(&next.backends, bk);
	{
		struct ptrvec tmp = cfg->backends;
		cfg->backends = next.backends;
		next.backends = tmp;
	}
	log_info("reload: applied: %s", json_array_size(applied)
						? list(applied, a, sizeof(a))
						: "nothing changed");
	if (json_object_size(bk))
		log_info("reload: backends started [%s], stopped [%s], restarted [%s]",
			 list(json_object_get(bk, "started"), a, sizeof(a)),
			 list(json_object_get(bk, "stopped"), b, sizeof(b)),
			 json_object_get(bk, "restarted")
				 ? list(json_object_get(bk, "restarted"), a, sizeof(a))
				 : "");
	if (json_array_size(restart))
		log_warn("reload: not applied, needs a restart: %s",
			 list(restart, a, sizeof(a)));
	config_free(&next);
	json_decref(applied), json_decref(restart), json_decref(bk);
}
