/* check_pubsub.c - subscriptions, fan-out rules, system events, health. */
#include "config.h"

#include <string.h>

#include "testhub.h"

static void
setup(void)
{
	th_setup();
}

static void
teardown(void)
{
	th_teardown();
}

static void
sub(struct session *s, const char *patterns_json)
{
	char buf[256];
	json_t *j;

	snprintf(buf, sizeof(buf),
		 "{\"id\":\"sub\",\"method\":\"avd.subscribe\",\"params\":{\"events\":%s}}",
		 patterns_json);
	th_send(s, buf);
	j = th_next(s);
	ck_assert_msg(json_is_true(th_get(j, "ok")), "subscribe %s failed", patterns_json);
	json_decref(j);
}

/* How many "event" messages named name are queued for s (drains s). */
static int
count_events(struct session *s, const char *name)
{
	int n = 0;
	json_t *j;

	while ((j = th_next(s))) {
		if (!strcmp(th_str(j, "type"), "event") && !strcmp(th_str(j, "event"), name))
			n++;
		json_decref(j);
	}
	return n;
}

/* Names of the events queued for s, in order, each followed by ','. */
static const char *
event_names(struct session *s)
{
	static char buf[512];
	json_t *j;

	buf[0] = '\0';
	while ((j = th_next(s))) {
		if (!strcmp(th_str(j, "type"), "event")) {
			strncat(buf, th_str(j, "event"), sizeof(buf) - strlen(buf) - 2);
			strcat(buf, ",");
		}
		json_decref(j);
	}
	return buf;
}

START_TEST(test_exact_prefix_star)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *a = th_open("frontend", "a");
	struct session *b = th_open("frontend", "b");
	struct session *c = th_open("frontend", "c");

	sub(a, "[\"agui:run_started\"]");
	sub(b, "[\"agui:*\"]");
	sub(c, "[\"*\"]");
	th_drain(a), th_drain(b), th_drain(c);
	th_send(pub, "{\"type\":\"event\",\"event\":\"agui:run_started\",\"data\":{\"x\":1}}");
	th_send(pub, "{\"type\":\"event\",\"event\":\"agui:other\"}");
	th_send(pub, "{\"type\":\"event\",\"event\":\"progress\"}");
	ck_assert_str_eq(event_names(a), "agui:run_started,");
	ck_assert_str_eq(event_names(b), "agui:run_started,agui:other,");
	ck_assert_str_eq(event_names(c), "agui:run_started,agui:other,progress,");
	ck_assert_str_eq(event_names(pub), "");
}
END_TEST

START_TEST(test_one_copy_when_patterns_overlap)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *a = th_open("frontend", "a");
	json_t *j;

	sub(a, "[\"progress\", \"prog*\", \"*\"]");
	th_drain(a);
	th_send(pub, "{\"type\":\"event\",\"event\":\"progress\",\"detail\":{\"pct\":40}}");
	j = th_next(a);
	ck_assert_str_eq(th_str(j, "event"), "progress");
	ck_assert_int_eq(json_integer_value(th_get(j, "data.pct")), 40);
	ck_assert_ptr_null(th_get(j, "detail"));
	ck_assert_str_eq(th_str(j, "from"), pub->id);
	json_decref(j);
	ck_assert_ptr_null(th_next(a));
}
END_TEST

START_TEST(test_publisher_excluded_unless_echo)
{
	struct session *a = th_open("frontend", "a");
	json_t *j;

	sub(a, "[\"x\"]");
	th_send(a, "{\"type\":\"event\",\"event\":\"x\"}");
	ck_assert_ptr_null(th_next(a));
	th_send(a, "{\"type\":\"event\",\"event\":\"x\",\"echo\":true}");
	j = th_next(a);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_object(th_get(j, "data")));
	ck_assert_int_eq(json_object_size(th_get(j, "data")), 0);
	json_decref(j);
}
END_TEST

START_TEST(test_to_targets_unsubscribed)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *a = th_open("frontend", "a");
	struct session *b = th_open("frontend", "b");
	char buf[200];

	sub(b, "[\"*\"]");
	snprintf(buf, sizeof(buf), "{\"type\":\"event\",\"event\":\"hi\",\"to\":[\"%s\",\"s999\"]}", a->id);
	th_send(pub, buf);
	ck_assert_int_eq(count_events(a, "hi"), 1);
	ck_assert_int_eq(count_events(b, "hi"), 0);
}
END_TEST

START_TEST(test_frame_serialized_once)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *a = th_open("frontend", "a");
	struct session *b = th_open("frontend", "b");
	struct frame *fa, *fb;

	sub(a, "[\"x\"]");
	sub(b, "[\"x\"]");
	th_send(pub, "{\"type\":\"event\",\"event\":\"x\",\"data\":[1,2,3]}");
	fa = outq_peek(&a->q);
	fb = outq_peek(&b->q);
	ck_assert_ptr_eq(fa, fb);
	ck_assert_uint_eq(fa->refs, 2);
}
END_TEST

START_TEST(test_system_events_reach_frontends_unsubscribed)
{
	struct session *fe = th_open("frontend", "page");
	struct session *be = th_open("backend", "py");
	struct session *be2 = th_open("backend", "other");
	json_t *j;

	th_drain(fe);
	th_send(be, "{\"type\":\"ready\",\"handlers\":[\"api.echo\"]}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "event"), "backend_ready");
	ck_assert_str_eq(th_str(j, "data.backend"), "py");
	ck_assert_str_eq(th_str(j, "data.session"), be->id);
	ck_assert_int_eq(json_integer_value(th_get(j, "data.schema_version")), 1);
	ck_assert_str_eq(json_string_value(json_array_get(th_get(j, "data.handlers"), 0)),
			 "api.echo");
	json_decref(j);
	/* Backends do not get system events unless they subscribe. */
	ck_assert_int_eq(count_events(be2, "backend_ready"), 0);
}
END_TEST

START_TEST(test_membership_events_only_to_subscribers)
{
	struct session *watcher = th_open("frontend", "watch");
	struct session *other = th_open("frontend", "other");
	struct session *n;

	sub(watcher, "[\"avd:*\"]");
	th_drain(other);
	n = th_open("frontend", "newcomer");
	ck_assert_int_eq(count_events(watcher, "avd:session_joined"), 1);
	ck_assert_int_eq(count_events(other, "avd:session_joined"), 0);
	th_gone(n);
	ck_assert_int_eq(count_events(watcher, "avd:session_left"), 1);
}
END_TEST

START_TEST(test_reserved_and_invalid_names)
{
	struct session *a = th_open("frontend", "a");
	json_t *j;

	th_send(a, "{\"type\":\"event\",\"event\":\"avd:session_joined\"}");
	j = th_next(a);
	ck_assert_str_eq(th_str(j, "error.code"), "INVALID_REQUEST");
	json_decref(j);
	th_send(a, "{\"id\":1,\"method\":\"avd.subscribe\",\"params\":{\"events\":[\"bad name\"]}}");
	j = th_next(a);
	ck_assert_str_eq(th_str(j, "error.code"), "INVALID_REQUEST");
	json_decref(j);
}
END_TEST

START_TEST(test_heartbeat_unhealthy_then_alive)
{
	struct session *fe = th_open("frontend", "page");
	struct session *be = th_open("backend", "py");
	json_t *j;
	int pings = 0, unhealthy = 0, errors = 0;

	th_cfg.heartbeat_interval_ms = 100;
	th_cfg.heartbeat_timeout_ms = 300;
	th_send(be, "{\"type\":\"ready\",\"handlers\":[\"api.slow\"]}");
	health_watch(be);
	th_drain(fe);
	th_drain(be);
	th_send(fe, "{\"id\":1,\"method\":\"api.slow\",\"timeout_ms\":0}");
	for (int i = 0; i < 40; i++)
		th_advance(10);
	while ((j = th_next(be))) {
		if (!strcmp(th_str(j, "method"), "__ping__")) {
			ck_assert(!strncmp(th_str(j, "id"), "__av_ping_", 10));
			pings++;
		}
		json_decref(j);
	}
	ck_assert_int_ge(pings, 2);
	while ((j = th_next(fe))) {
		if (!strcmp(th_str(j, "event"), "backend_health") &&
		    !strcmp(th_str(j, "data.status"), "unhealthy"))
			unhealthy++;
		if (!strcmp(th_str(j, "event"), "backend_error")) {
			ck_assert_str_eq(th_str(j, "data.source"), "heartbeat");
			ck_assert(json_is_false(th_get(j, "data.fatal")));
			errors++;
		}
		if (json_is_integer(th_get(j, "id")))
			ck_assert_str_eq(th_str(j, "error.code"), "BACKEND_UNAVAILABLE");
		json_decref(j);
	}
	ck_assert_int_eq(unhealthy, 1);
	ck_assert_int_eq(errors, 1);
	/* New calls fail fast while it is unhealthy. */
	th_send(fe, "{\"id\":2,\"method\":\"api.slow\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "BACKEND_UNAVAILABLE");
	ck_assert_str_eq(th_str(j, "error.data.reason"), "unhealthy");
	json_decref(j);
	/* Any message brings it back. */
	th_send(be, "{\"id\":\"__av_ping_1\",\"ok\":true,\"result\":{\"status\":\"pong\"}}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "event"), "backend_health");
	ck_assert_str_eq(th_str(j, "data.status"), "alive");
	json_decref(j);
}
END_TEST

START_TEST(test_late_frontend_greeted)
{
	struct session *be = th_open("backend", "py");
	struct session *fe;
	json_t *j;

	th_send(be, "{\"type\":\"ready\",\"handlers\":[\"api.echo\"]}");
	be->health = HEALTH_UNHEALTHY;
	fe = session_new(hub.sessions->ops, xcalloc(1, sizeof(int) * 4), SESSION_HELLO);
	th_send(fe, "{\"type\":\"hello\",\"token\":\"secret-token\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "type"), "welcome");
	json_decref(j);
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "event"), "backend_ready");
	json_decref(j);
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "event"), "backend_health");
	ck_assert_str_eq(th_str(j, "data.status"), "unhealthy");
	json_decref(j);
}
END_TEST

START_TEST(test_backend_health_republished)
{
	struct session *fe = th_open("frontend", "page");
	struct session *be = th_open("backend", "py");
	json_t *j;

	th_drain(fe);
	th_send(be, "{\"type\":\"event\",\"event\":\"backend_health\",\"data\":{\"status\":\"alive\",\"ts\":5,\"schema_version\":1}}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "event"), "backend_health");
	ck_assert_str_eq(th_str(j, "data.backend"), "py");
	ck_assert_str_eq(th_str(j, "data.session"), be->id);
	ck_assert_int_eq(json_integer_value(th_get(j, "data.ts")), 5);
	json_decref(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("pubsub");
	TCase *tc = tcase_create("events");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_exact_prefix_star);
	tcase_add_test(tc, test_one_copy_when_patterns_overlap);
	tcase_add_test(tc, test_publisher_excluded_unless_echo);
	tcase_add_test(tc, test_to_targets_unsubscribed);
	tcase_add_test(tc, test_frame_serialized_once);
	tcase_add_test(tc, test_system_events_reach_frontends_unsubscribed);
	tcase_add_test(tc, test_membership_events_only_to_subscribers);
	tcase_add_test(tc, test_reserved_and_invalid_names);
	tcase_add_test(tc, test_heartbeat_unhealthy_then_alive);
	tcase_add_test(tc, test_late_frontend_greeted);
	tcase_add_test(tc, test_backend_health_republished);
	suite_add_tcase(s, tc);
	return th_run(s);
}
