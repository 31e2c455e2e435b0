/* testhub.c - an in-memory transport and helpers for the unit tests. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testhub.h"

struct config th_cfg;
uint64_t th_now;

/* Transport state lives in a small side table keyed by session pointer. */
struct tx {
	int close_code;
};

static void
t_kick(struct session *s)
{
}

static void
t_close(struct session *s, int code, const char *reason, bool discard)
{
	struct tx *t = s->tx;
	t->close_code = code;
}

static const struct transport_ops test_ops = {
	.name = "test",
	.kick = t_kick,
	.close = t_close,
};

int
th_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

void
th_setup(void)
{
	th_now = 1000000;
	clock_set_fake(&th_now);
	config_defaults(&th_cfg);
	th_cfg.token = xstrdup("secret-token");
	log_set_level(LOG_ERROR);
	hub_init(&th_cfg);
}

void
th_teardown(void)
{
	struct session *s;

	for (s = hub.sessions; s; s = s->next)
		free(s->tx);
	hub_free();
	config_free(&th_cfg);
	clock_set_fake(NULL);
}

struct session *
th_open(const char *role, const char *name)
{
	struct session *s = session_new(&test_ops, xcalloc(1, sizeof(struct tx)),
					SESSION_HELLO);
	json_t *w;

	th_sendf(s, "{s:s, s:i, s:s, s:s, s:s}", "type", "hello", "schema_version",
		 1, "role", role, "name", name, "token", "secret-token");
	w = th_next(s);
	ck_assert_ptr_nonnull(w);
	ck_assert_str_eq(th_str(w, "type"), "welcome");
	json_decref(w);
	th_drain(s);
	return s;
}

void
th_send(struct session *s, const char *json)
{
	char *copy = xstrdup(json);

	session_on_message(s, copy, strlen(copy));
	free(copy);
}

void
th_sendf(struct session *s, const char *fmt, ...)
{
	va_list ap;
	json_t *j;
	char *text;

	va_start(ap, fmt);
	j = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	ck_assert_ptr_nonnull(j);
	text = json_dumps(j, JSON_COMPACT);
	th_send(s, text);
	free(text);
	json_decref(j);
}

json_t *
th_next(struct session *s)
{
	struct frame *f = session_next_frame(s);
	json_t *j;

	if (!f)
		return NULL;
	j = json_loadb((const char *)frame_data(f), f->len, JSON_ALLOW_NUL, NULL);
	ck_assert_ptr_nonnull(j);
	frame_unref(f);
	return j;
}

int
th_drain(struct session *s)
{
	int n = 0;
	json_t *j;

	while ((j = th_next(s))) {
		json_decref(j);
		n++;
	}
	return n;
}

void
th_advance(uint64_t ms)
{
	th_now += ms;
	timer_run_due();
}

int
th_close_code(struct session *s)
{
	return ((struct tx *)s->tx)->close_code;
}

void
th_gone(struct session *s)
{
	free(s->tx);
	session_gone(s);
}

json_t *
th_get(json_t *j, const char *path)
{
	char buf[128], *save = NULL, *part;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); part && j;
	     part = strtok_r(NULL, ".", &save))
		j = json_object_get(j, part);
	return j;
}

const char *
th_str(json_t *j, const char *path)
{
	const char *s = json_string_value(th_get(j, path));
	return s ? s : "(null)";
}
