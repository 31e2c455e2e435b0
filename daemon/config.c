/*
 * config.c - settings: built-in defaults, then the JSON config file, then
 * the command line.  Every problem is reported with the flag or key that
 * caused it, because a daemon that silently ignores a typo is worse than
 * one that refuses to start.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avd.h"

#ifndef AVD_UI_DIR
#define AVD_UI_DIR "/usr/local/share/avd/ui"
#endif
#ifndef AVD_CLIENT_DIR
#define AVD_CLIENT_DIR "/usr/local/share/avd/client-js"
#endif

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = xstrdup("127.0.0.1");
	c->port = 7700;
	c->ui_dir = xstrdup(AVD_UI_DIR);
	c->client_dir = xstrdup(AVD_CLIENT_DIR);
	c->call_timeout_ms = 30000;
	c->heartbeat_interval_ms = 2000;
	c->heartbeat_timeout_ms = 6000;
	c->hello_timeout_ms = 5000;
	c->max_message_bytes = 1024 * 1024;
	c->max_queue_bytes = 8 * 1024 * 1024;
	c->max_pending_calls = 10000;
	c->max_sessions = 10000;
	c->backend_fail_fast = true;
	c->log_level = LOG_INFO;
}

void
config_free(struct config *c)
{
	free(c->listen);
	free(c->token);
	free(c->token_file);
	free(c->ui_dir);
	free(c->client_dir);
	free(c->unix_path);
	free(c->config_file);
	for (uint32_t i = 0; i < c->allow_origins.n; i++)
		free(c->allow_origins.v[i]);
	ptrvec_free(&c->allow_origins);
	for (uint32_t i = 0; i < c->backends.n; i++)
		config_backend_free(c->backends.v[i]);
	ptrvec_free(&c->backends);
	memset(c, 0, sizeof(*c));
}

/* The settings, by the name used both as --flag and as config key. */
enum kind { K_STR, K_U32, K_SIZE, K_PORT, K_BOOL, K_FLAG, K_ORIGIN, K_LEVEL,
	    K_FORMAT, K_BACKEND };
struct setting {
	const char *name; /* snake_case; the flag is the same with '-' */
	enum kind kind;
	size_t off;
	uint64_t min, max;
};

#define OFF(f) offsetof(struct config, f)
static const struct setting settings[] = {
	{ "listen", K_STR, OFF(listen), 0, 0 },
	{ "port", K_PORT, OFF(port), 0, 65535 },
	{ "token", K_STR, OFF(token), 0, 0 },
	{ "token_file", K_STR, OFF(token_file), 0, 0 },
	{ "no_auth", K_FLAG, OFF(no_auth), 0, 0 },
	{ "allow_remote", K_FLAG, OFF(allow_remote), 0, 0 },
	{ "allow_origin", K_ORIGIN, OFF(allow_origins), 0, 0 },
	{ "ui", K_STR, OFF(ui_dir), 0, 0 },
	{ "client_dir", K_STR, OFF(client_dir), 0, 0 },
	{ "unix", K_STR, OFF(unix_path), 0, 0 },
	{ "call_timeout_ms", K_U32, OFF(call_timeout_ms), 0, 2147483647 },
	{ "heartbeat_interval_ms", K_U32, OFF(heartbeat_interval_ms), 10, 3600000 },
	{ "heartbeat_timeout_ms", K_U32, OFF(heartbeat_timeout_ms), 10, 86400000 },
	{ "hello_timeout_ms", K_U32, OFF(hello_timeout_ms), 10, 3600000 },
	{ "max_message_bytes", K_SIZE, OFF(max_message_bytes), 256, 1u << 30 },
	{ "max_queue_bytes", K_SIZE, OFF(max_queue_bytes), 4096, 1ull << 34 },
	{ "max_pending_calls", K_U32, OFF(max_pending_calls), 1, 10000000 },
	{ "max_sessions", K_U32, OFF(max_sessions), 1, 1000000 },
	{ "backend_fail_fast", K_BOOL, OFF(backend_fail_fast), 0, 0 },
	{ "log_level", K_LEVEL, OFF(log_level), 0, 0 },
	{ "log_format", K_FORMAT, OFF(log_format), 0, 0 },
	{ "backend", K_BACKEND, OFF(backends), 0, 0 },
	{ "backends", K_BACKEND, OFF(backends), 0, 0 },
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const struct setting *
find_setting(const char *name)
{
	char norm[64];
	size_t i;

	for (i = 0; name[i] && i < sizeof(norm) - 1; i++)
		norm[i] = name[i] == '-' ? '_' : name[i];
	norm[i] = '\0';
	for (i = 0; i < NSETTINGS; i++)
		if (!strcmp(settings[i].name, norm))
			return &settings[i];
	return NULL;
}

static int
parse_uint(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static struct backend_conf *
backend_defaults(void)
{
	struct backend_conf *b = xcalloc(1, sizeof(*b));

	b->ready_timeout_ms = 10000;
	b->restart_backoff_ms = 500;
	b->restart_backoff_max_ms = 30000;
	b->max_restarts = 5;
	b->restart = RESTART_ON_FAILURE;
	return b;
}

void
config_backend_free(struct backend_conf *b)
{
	if (!b)
		return;
	free(b->name);
	free(b->command);
	free(b->cwd);
	json_decref(b->env);
	free(b);
}

/* dir, or the same directory relative to the running binary when the
 * installed one is missing (a DESTDIR staging tree, a moved prefix). */
static void
relocate(char **dir, const char *installed, const char *tail)
{
	char exe[PATH_MAX], alt[PATH_MAX + 64], *slash;
	ssize_t n;

	if (strcmp(*dir, installed) || access(*dir, R_OK) == 0)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	if (!(slash = strrchr(exe, '/')))
		return;
	*slash = '\0'; /* .../bin */
	snprintf(alt, sizeof(alt), "%s/../share/avd/%s", exe, tail);
	if (access(alt, R_OK) == 0) {
		free(*dir);
		*dir = xstrdup(alt);
	}
}

void
config_locate_dirs(struct config *c)
{
	relocate(&c->ui_dir, AVD_UI_DIR, "ui");
	relocate(&c->client_dir, AVD_CLIENT_DIR, "client-js");
}

struct backend_conf *
config_backend_dup(const struct backend_conf *b)
{
	struct backend_conf *d = xmalloc(sizeof(*d));

	*d = *b;
	d->name = xstrdup(b->name);
	d->command = xstrdup(b->command);
	d->cwd = b->cwd ? xstrdup(b->cwd) : NULL;
	d->env = b->env ? json_deep_copy(b->env) : NULL;
	return d;
}

bool
config_backend_equal(const struct backend_conf *a, const struct backend_conf *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->command, b->command) &&
	       !strcmp(a->cwd ? a->cwd : "", b->cwd ? b->cwd : "") &&
	       ((!a->env && !b->env) || (a->env && b->env && json_equal(a->env, b->env))) &&
	       a->ready_timeout_ms == b->ready_timeout_ms &&
	       a->restart_backoff_ms == b->restart_backoff_ms &&
	       a->restart_backoff_max_ms == b->restart_backoff_max_ms &&
	       a->max_restarts == b->max_restarts && a->restart == b->restart;
}

static bool
valid_backend_name(const char *s)
{
	return s && *s && strlen(s) <= 64 && msg_valid_event_name(s, strlen(s));
}

static int
backend_u32(const json_t *obj, const char *key, uint32_t *out, uint64_t max,
	    const char *label, struct avd_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "%s.%s: expected a whole number up to %llu", label,
			       key, (unsigned long long)max);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

struct backend_conf *
config_backend_json(const json_t *obj, size_t index, struct avd_err *err)
{
	struct backend_conf *b;
	char label[48];
	const char *key, *restart;
	json_t *v;

	snprintf(label, sizeof(label), "backends[%zu]", index);
	if (!json_is_object(obj)) {
		err_set(err, AVD_E_INVALID_REQUEST, NULL, "%s: expected an object", label);
		return NULL;
	}
	json_object_foreach((json_t *)obj, key, v) {
		static const char *const known[] = {
			"name", "command", "cwd", "env", "ready_timeout_ms", "restart",
			"max_restarts", "restart_backoff_ms", "restart_backoff_max_ms",
		};
		size_t i;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (!strcmp(key, known[i]))
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			err_set(err, AVD_E_INVALID_REQUEST, NULL, "%s: unknown key \"%s\"",
				label, key);
			return NULL;
		}
	}
	b = backend_defaults();
	v = json_object_get(obj, "name");
	if (!valid_backend_name(json_string_value(v))) {
		err_set(err, AVD_E_INVALID_REQUEST, NULL,
			"%s.name: expected 1-64 letters, digits or _ . : / -", label);
		goto fail;
	}
	b->name = xstrdup(json_string_value(v));
	v = json_object_get(obj, "command");
	if (!json_is_string(v) || !json_string_length(v)) {
		err_set(err, AVD_E_INVALID_REQUEST, NULL,
			"%s.command: expected a non-empty string", label);
		goto fail;
	}
	b->command = xstrdup(json_string_value(v));
	v = json_object_get(obj, "cwd");
	if (v && !json_is_string(v)) {
		err_set(err, AVD_E_INVALID_REQUEST, NULL, "%s.cwd: expected a string", label);
		goto fail;
	}
	if (v)
		b->cwd = xstrdup(json_string_value(v));
	v = json_object_get(obj, "env");
	if (v) {
		const char *k;
		json_t *ev;
		if (!json_is_object(v)) {
			err_set(err, AVD_E_INVALID_REQUEST, NULL,
				"%s.env: expected an object of strings", label);
			goto fail;
		}
		json_object_foreach(v, k, ev) {
			if (!json_is_string(ev) || !*k || strchr(k, '=')) {
				err_set(err, AVD_E_INVALID_REQUEST, NULL,
					"%s.env.%s: expected a string", label, k);
				goto fail;
			}
		}
		b->env = json_incref(v);
	}
	restart = json_string_value(json_object_get(obj, "restart"));
	if (json_object_get(obj, "restart")) {
		if (restart && !strcmp(restart, "no"))
			b->restart = RESTART_NO;
		else if (restart && !strcmp(restart, "on-failure"))
			b->restart = RESTART_ON_FAILURE;
		else if (restart && !strcmp(restart, "always"))
			b->restart = RESTART_ALWAYS;
		else {
			err_set(err, AVD_E_INVALID_REQUEST, NULL,
				"%s.restart: expected \"no\", \"on-failure\" or \"always\"",
				label);
			goto fail;
		}
	}
	if (backend_u32(obj, "ready_timeout_ms", &b->ready_timeout_ms, 3600000, label, err) ||
	    backend_u32(obj, "max_restarts", &b->max_restarts, 1000000, label, err) ||
	    backend_u32(obj, "restart_backoff_ms", &b->restart_backoff_ms, 3600000, label, err) ||
	    backend_u32(obj, "restart_backoff_max_ms", &b->restart_backoff_max_ms, 3600000,
			label, err))
		goto fail;
	if (b->ready_timeout_ms == 0)
		b->ready_timeout_ms = 1;
	return b;
fail:
	config_backend_free(b);
	return NULL;
}

/* Add backends; a name already configured is replaced (flags win). */
static void
add_backend(struct config *c, struct backend_conf *b)
{
	for (uint32_t i = 0; i < c->backends.n; i++) {
		struct backend_conf *o = c->backends.v[i];
		if (!strcmp(o->name, b->name)) {
			config_backend_free(o);
			c->backends.v[i] = b;
			return;
		}
	}
	ptrvec_push(&c->backends, b);
}

/* Apply one setting from text (flags) or JSON (config file; text NULL). */
static int
apply(struct config *c, const struct setting *st, const char *text,
      const json_t *j, const char *label, struct avd_err *err)
{
	char *base = (char *)c;
	uint64_t v = 0;

	switch (st->kind) {
	case K_STR:
		if (!text && !json_is_string(j))
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: expected a string", label);
		if (!text)
			text = json_string_value(j);
		free(*(char **)(base + st->off));
		*(char **)(base + st->off) = xstrdup(text);
		return 0;
	case K_FLAG:
	case K_BOOL:
		if (text) {
			if (st->kind == K_FLAG || !strcmp(text, "true") || !strcmp(text, "1"))
				v = 1;
			else if (!strcmp(text, "false") || !strcmp(text, "0"))
				v = 0;
			else
				return err_set(err, AVD_E_INVALID_REQUEST, NULL,
					       "%s: expected true or false, got \"%s\"",
					       label, text);
		} else if (json_is_boolean(j)) {
			v = json_is_true(j);
		} else {
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: expected true or false", label);
		}
		*(bool *)(base + st->off) = v != 0;
		return 0;
	case K_ORIGIN: {
		struct ptrvec *pv = (struct ptrvec *)(base + st->off);
		if (text) {
			ptrvec_push(pv, xstrdup(text));
			return 0;
		}
		if (json_is_string(j)) {
			ptrvec_push(pv, xstrdup(json_string_value(j)));
			return 0;
		}
		if (json_is_array(j)) {
			size_t i;
			json_t *o;
			json_array_foreach(j, i, o) {
				if (!json_is_string(o))
					return err_set(err, AVD_E_INVALID_REQUEST, NULL,
						       "%s[%zu]: expected a string", label, i);
				ptrvec_push(pv, xstrdup(json_string_value(o)));
			}
			return 0;
		}
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "%s: expected a string or an array of strings", label);
	}
	case K_BACKEND: {
		struct backend_conf *b;
		if (text) {
			const char *eq = strchr(text, '=');
			char *name;
			if (!eq || eq == text || !eq[1])
				return err_set(err, AVD_E_INVALID_REQUEST, NULL,
					       "%s: expected NAME=COMMAND, got \"%s\"", label, text);
			name = xstrndup(text, (size_t)(eq - text));
			if (!valid_backend_name(name)) {
				free(name);
				return err_set(err, AVD_E_INVALID_REQUEST, NULL,
					       "%s: the name before '=' must be 1-64 letters, "
					       "digits or _ . : / -", label);
			}
			b = backend_defaults();
			b->name = name;
			b->command = xstrdup(eq + 1);
			add_backend(c, b);
			return 0;
		}
		if (!json_is_array(j))
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: expected an array of backends", label);
		for (size_t i = 0; i < json_array_size(j); i++) {
			b = config_backend_json(json_array_get(j, i), i, err);
			if (!b)
				return -EINVAL;
			add_backend(c, b);
		}
		return 0;
	}
	case K_FORMAT: {
		enum log_format f;
		const char *s = text ? text : json_string_value(j);
		if (!s || log_parse_format(s, &f))
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: expected text or json", label);
		*(enum log_format *)(base + st->off) = f;
		return 0;
	}
	case K_LEVEL: {
		enum log_level l;
		const char *s = text ? text : json_string_value(j);
		if (!s || log_parse_level(s, &l))
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: expected error, warn, info or debug", label);
		*(enum log_level *)(base + st->off) = l;
		return 0;
	}
	case K_U32:
	case K_SIZE:
	case K_PORT:
		if (text) {
			if (parse_uint(text, &v))
				return err_set(err, AVD_E_INVALID_REQUEST, NULL,
					       "%s: \"%s\" is not a whole number", label, text);
		} else if (json_is_integer(j) && json_integer_value(j) >= 0) {
			v = (uint64_t)json_integer_value(j);
		} else {
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: expected a whole number", label);
		}
		if (v < st->min || v > st->max)
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "%s: %" PRIu64 " is out of range %" PRIu64 "..%" PRIu64,
				       label, v, st->min, st->max);
		if (st->kind == K_U32)
			*(uint32_t *)(base + st->off) = (uint32_t)v;
		else if (st->kind == K_SIZE)
			*(size_t *)(base + st->off) = (size_t)v;
		else
			*(int *)(base + st->off) = (int)v;
		return 0;
	}
	return err_set(err, AVD_E_INTERNAL, NULL, "%s: unhandled setting", label);
}

int
config_apply_json(struct config *c, const json_t *obj, struct avd_err *err)
{
	const char *key;
	json_t *val;

	if (!json_is_object(obj))
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "the config file must hold a JSON object");
	json_object_foreach((json_t *)obj, key, val) {
		const struct setting *st = find_setting(key);
		char label[96];

		snprintf(label, sizeof(label), "config key \"%s\"", key);
		if (!st)
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "unknown config key \"%s\"", key);
		if (apply(c, st, NULL, val, label, err))
			return -EINVAL;
	}
	return 0;
}

static int
load_file(struct config *c, const char *path, struct avd_err *err)
{
	json_error_t jerr;
	json_t *obj = json_load_file(path, 0, &jerr);
	int rc;

	if (!obj)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "config file %s: %s (line %d)", path, jerr.text,
			       jerr.line);
	rc = config_apply_json(c, obj, err);
	if (rc) {
		char msg[sizeof(err->message) + 64];
		snprintf(msg, sizeof(msg), "%.60s: %s", path, err->message);
		memcpy(err->message, msg, sizeof(err->message) - 1);
		err->message[sizeof(err->message) - 1] = '\0';
	}
	json_decref(obj);
	return rc;
}

int
config_check_file(const char *path, FILE *out)
{
	struct config scratch;
	struct avd_err err = { 0 };
	json_error_t jerr;
	json_t *obj = json_load_file(path, 0, &jerr), *val;
	const char *key;
	int problems = 0;

	if (!obj) {
		fprintf(out, "%s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
		return 1;
	}
	if (!json_is_object(obj)) {
		fprintf(out, "%s: the config file must hold a JSON object\n", path);
		json_decref(obj);
		return 1;
	}
	config_defaults(&scratch);
	/* Every key on its own, so one mistake does not hide the next. */
	json_object_foreach(obj, key, val) {
		const struct setting *st = find_setting(key);
		char label[96];

		snprintf(label, sizeof(label), "key \"%s\"", key);
		if (!st) {
			fprintf(out, "%s: unknown key \"%s\"\n", path, key);
			problems++;
		} else if (st->kind == K_BACKEND && json_is_array(val)) {
			for (size_t i = 0; i < json_array_size(val); i++) {
				struct backend_conf *b =
					config_backend_json(json_array_get(val, i), i, &err);
				if (!b) {
					fprintf(out, "%s: %s\n", path, err.message);
					problems++;
				} else {
					for (uint32_t k = 0; k < scratch.backends.n; k++)
						if (!strcmp(((struct backend_conf *)scratch.backends.v[k])->name,
							    b->name)) {
							fprintf(out, "%s: backends[%zu].name: \"%s\" is used twice\n",
								path, i, b->name);
							problems++;
						}
					ptrvec_push(&scratch.backends, b);
				}
			}
		} else if (apply(&scratch, st, NULL, val, label, &err)) {
			fprintf(out, "%s: %s\n", path, err.message);
			problems++;
		}
	}
	if (scratch.heartbeat_timeout_ms < scratch.heartbeat_interval_ms) {
		fprintf(out, "%s: key \"heartbeat_timeout_ms\" (%u) is shorter than "
			     "\"heartbeat_interval_ms\" (%u)\n",
			path, scratch.heartbeat_timeout_ms, scratch.heartbeat_interval_ms);
		problems++;
	}
	err_clear(&err);
	config_free(&scratch);
	json_decref(obj);
	return problems;
}

static int
read_token_file(struct config *c, struct avd_err *err)
{
	char buf[256];
	FILE *f = fopen(c->token_file, "r");
	size_t n;

	if (!f)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--token-file %s: %s", c->token_file, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	if (n < 8)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--token-file %s: token shorter than 8 characters",
			       c->token_file);
	free(c->token);
	c->token = xstrdup(buf);
	return 0;
}

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, 0 },
	{ "port", required_argument, NULL, 0 },
	{ "token", required_argument, NULL, 0 },
	{ "token-file", required_argument, NULL, 0 },
	{ "no-auth", no_argument, NULL, 0 },
	{ "allow-remote", no_argument, NULL, 0 },
	{ "allow-origin", required_argument, NULL, 0 },
	{ "ui", required_argument, NULL, 0 },
	{ "client-dir", required_argument, NULL, 0 },
	{ "unix", required_argument, NULL, 0 },
	{ "config", required_argument, NULL, 'c' },
	{ "call-timeout-ms", required_argument, NULL, 0 },
	{ "heartbeat-interval-ms", required_argument, NULL, 0 },
	{ "heartbeat-timeout-ms", required_argument, NULL, 0 },
	{ "hello-timeout-ms", required_argument, NULL, 0 },
	{ "max-message-bytes", required_argument, NULL, 0 },
	{ "max-queue-bytes", required_argument, NULL, 0 },
	{ "max-pending-calls", required_argument, NULL, 0 },
	{ "max-sessions", required_argument, NULL, 0 },
	{ "backend-fail-fast", required_argument, NULL, 0 },
	{ "log-level", required_argument, NULL, 0 },
	{ "log-format", required_argument, NULL, 0 },
	{ "backend", required_argument, NULL, 0 },
	{ "check-config", required_argument, NULL, 'C' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char usage_text[] =
	"usage: avd [options]\n"
	"\n"
	"  --listen ADDR              address to listen on (default 127.0.0.1)\n"
	"  --port N                   TCP port; 0 picks a free one (default 7700)\n"
	"  --token T                  token clients must present\n"
	"  --token-file F             read the token from file F\n"
	"  --no-auth                  accept clients without a token\n"
	"  --allow-remote             permit a --listen address that is not loopback\n"
	"  --allow-origin O           also accept WebSocket Origin O (repeatable)\n"
	"  --ui DIR                   serve static files from DIR\n"
	"  --client-dir DIR           serve /avd.js and /avd.global.js from DIR\n"
	"  --unix PATH                also listen on unix socket PATH (mode 0600;\n"
	"                             peers must be this user; no token needed)\n"
	"  --config FILE              JSON config file (keys as the flags, snake_case)\n"
	"  --call-timeout-ms N        default call timeout; 0 = none (30000)\n"
	"  --heartbeat-interval-ms N  ping a backend silent this long (2000)\n"
	"  --heartbeat-timeout-ms N   mark a backend unhealthy after this silence (6000)\n"
	"  --hello-timeout-ms N       time a client has to send hello (5000)\n"
	"  --max-message-bytes N      largest inbound message (1048576)\n"
	"  --max-queue-bytes N        outbound queue limit per session (8388608)\n"
	"  --max-pending-calls N      pending calls per session (10000)\n"
	"  --max-sessions N           concurrent sessions (10000)\n"
	"  --backend-fail-fast B      fail calls to unhealthy backends at once (true)\n"
	"  --log-level L              error, warn, info or debug (info)\n"
	"  --log-format F             text or json (text)\n"
	"  --backend NAME=COMMAND     supervise COMMAND (run by /bin/sh -c) as backend\n"
	"                             NAME over its stdin/stdout (repeatable)\n"
	"  --check-config FILE        report every problem in a config file and exit\n"
	"                             (0 when it is valid, 2 when not)\n"
	"  --version                  print the version and exit\n"
	"  --help                     print this help and exit\n";

int
config_parse_args(struct config *c, int argc, char **argv, struct avd_err *err)
{
	int opt, idx;

	/* Pass 1: --help, --version and --config, so flags can override the file. */
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", long_opts, &idx)) != -1) {
		if (opt == 'h') {
			fputs(usage_text, stdout);
			return 1;
		}
		if (opt == 'V') {
			printf("avd %s\n", PACKAGE_VERSION);
			return 1;
		}
		if (opt == 'C') {
			int n = config_check_file(optarg, stderr);
			if (n == 0)
				printf("%s: OK\n", optarg);
			return n == 0 ? 1 : -ECANCELED;
		}
		if (opt == 'c') {
			free(c->config_file);
			c->config_file = xstrdup(optarg);
		}
		if (opt == '?' || opt == ':') {
			const char *bad = argv[optind - 1];
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       opt == ':' ? "option %s needs a value"
						  : "unknown option %s (see --help)",
				       bad);
		}
	}
	if (optind < argc)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "unexpected argument \"%s\" (see --help)", argv[optind]);
	if (c->config_file && load_file(c, c->config_file, err))
		return -EINVAL;

	/* Pass 2: the flags themselves. */
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", long_opts, &idx)) != -1) {
		const struct setting *st;
		char label[64];

		if (opt != 0)
			continue;
		st = find_setting(long_opts[idx].name);
		snprintf(label, sizeof(label), "--%s", long_opts[idx].name);
		if (apply(c, st, optarg ? optarg : "true", NULL, label, err))
			return -EINVAL;
	}
	if (c->token_file && read_token_file(c, err))
		return -EINVAL;
	if (c->no_auth && c->token)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--no-auth cannot be combined with --token or --token-file");
	if (c->token && strlen(c->token) < 8)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--token: token shorter than 8 characters");
	if (c->heartbeat_timeout_ms < c->heartbeat_interval_ms)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--heartbeat-timeout-ms (%u) must not be shorter than "
			       "--heartbeat-interval-ms (%u)",
			       c->heartbeat_timeout_ms, c->heartbeat_interval_ms);
	return 0;
}

json_t *
config_client_json(const struct config *c)
{
	return json_pack("{s:I, s:b, s:I, s:I, s:I}", "callTimeoutMs",
			 (json_int_t)c->call_timeout_ms, "backendFailFast",
			 c->backend_fail_fast, "heartbeatTimeoutMs",
			 (json_int_t)c->heartbeat_timeout_ms, "heartbeatIntervalMs",
			 (json_int_t)c->heartbeat_interval_ms, "maxMessageBytes",
			 (json_int_t)c->max_message_bytes);
}
