/* check_router.c - registration and every rule of call routing. */
#include "config.h"

#include <string.h>

#include "testhub.h"

static struct session *fe, *be;

static void
setup(void)
{
	th_setup();
	be = th_open("backend", "py");
	fe = th_open("frontend", "page");
	th_send(be, "{\"id\":1,\"method\":\"avd.register\",\"params\":{\"methods\":[\"api.echo\",\"api.add\"]}}");
	th_drain(be);
	th_drain(fe);
}

static void
teardown(void)
{
	th_teardown();
}

/* The call as the backend sees it; returns avd's id (static buffer). */
static const char *
forwarded(void)
{
	static char id[32];
	json_t *j = th_next(be);

	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(th_str(j, "method"), "api.echo");
	snprintf(id, sizeof(id), "%s", th_str(j, "id"));
	json_decref(j);
	return id;
}

START_TEST(test_forward_and_answer)
{
	json_t *j;

	th_send(fe, "{\"id\":\"av_call_1\",\"method\":\"api.echo\",\"params\":{\"text\":\"你好\"},\"timeout_ms\":5000}");
	j = th_next(be);
	ck_assert_str_eq(th_str(j, "caller"), fe->id);
	ck_assert_int_eq(json_integer_value(th_get(j, "timeout_ms")), 5000);
	ck_assert_str_eq(th_str(j, "params.text"), "你好");
	ck_assert_str_ne(th_str(j, "id"), "av_call_1"); /* avd's own id */
	th_sendf(be, "{s:O, s:b, s:{s:s}}", "id", th_get(j, "id"), "ok", 1, "result",
		 "text", "你好");
	json_decref(j);
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "id"), "av_call_1");
	ck_assert(json_is_true(th_get(j, "ok")));
	ck_assert_str_eq(th_str(j, "result.text"), "你好");
	json_decref(j);
	ck_assert_uint_eq(map_count(hub.calls), 0);
}
END_TEST

START_TEST(test_default_timeout_forwarded)
{
	json_t *j;

	th_send(fe, "{\"id\":7,\"method\":\"api.echo\"}");
	j = th_next(be);
	ck_assert_int_eq(json_integer_value(th_get(j, "timeout_ms")), 30000);
	ck_assert(json_is_null(th_get(j, "params")));
	json_decref(j);
}
END_TEST

START_TEST(test_method_not_found_at_once)
{
	json_t *j;

	th_send(fe, "{\"id\":2,\"method\":\"api.nope\"}");
	j = th_next(fe);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_false(th_get(j, "ok")));
	ck_assert_str_eq(th_str(j, "error.code"), "METHOD_NOT_FOUND");
	ck_assert_str_eq(th_str(j, "error.name"), "MethodNotFound");
	ck_assert_str_eq(th_str(j, "error.data.method"), "api.nope");
	json_decref(j);
}
END_TEST

START_TEST(test_register_all_or_nothing)
{
	struct session *other = th_open("backend", "node");
	json_t *j;

	th_send(other, "{\"id\":1,\"method\":\"avd.register\",\"params\":{\"methods\":[\"api.new\",\"api.echo\"]}}");
	j = th_next(other);
	ck_assert_str_eq(th_str(j, "error.code"), "ALREADY_REGISTERED");
	ck_assert_str_eq(th_str(j, "error.data.method"), "api.echo");
	ck_assert_str_eq(th_str(j, "error.data.owner"), be->id);
	ck_assert_str_eq(th_str(j, "error.data.owner_name"), "py");
	json_decref(j);
	ck_assert_ptr_null(map_get(hub.methods, "api.new", 7));
}
END_TEST

START_TEST(test_timeout_cancels_callee_and_counts_late)
{
	const char *id;
	json_t *j;

	th_send(fe, "{\"id\":3,\"method\":\"api.echo\",\"timeout_ms\":100}");
	id = forwarded();
	th_advance(99);
	ck_assert_ptr_null(th_next(fe));
	th_advance(1);
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "TIMEOUT");
	ck_assert_int_eq(json_integer_value(th_get(j, "error.data.timeout_ms")), 100);
	ck_assert_str_eq(th_str(j, "error.data.method"), "api.echo");
	json_decref(j);
	j = th_next(be);
	ck_assert_str_eq(th_str(j, "type"), "cancel");
	ck_assert_str_eq(th_str(j, "id"), id);
	ck_assert_str_eq(th_str(j, "reason"), "timeout");
	json_decref(j);
	th_sendf(be, "{s:s, s:b, s:i}", "id", id, "ok", 1, "result", 1);
	ck_assert_ptr_null(th_next(fe));
	ck_assert_uint_eq(hub.st.late_answers, 1);
}
END_TEST

START_TEST(test_zero_timeout_never_fires)
{
	json_t *j;

	th_send(fe, "{\"id\":3,\"method\":\"api.echo\",\"timeout_ms\":0}");
	forwarded();
	/* Ten minutes, with the backend's heartbeat keeping it healthy. */
	for (int i = 0; i < 600; i++) {
		th_advance(1000);
		th_send(be, "{\"type\":\"event\",\"event\":\"backend_health\",\"data\":{\"status\":\"alive\"}}");
	}
	while ((j = th_next(fe))) {
		ck_assert_ptr_null(th_get(j, "id"));
		json_decref(j);
	}
	ck_assert_uint_eq(map_count(hub.calls), 1);
}
END_TEST

START_TEST(test_chunks_rearm_timeout_and_keep_order)
{
	const char *id;
	json_t *j;

	th_send(fe, "{\"id\":\"s\",\"method\":\"api.echo\",\"timeout_ms\":100}");
	id = forwarded();
	for (int i = 0; i < 5; i++) {
		th_advance(80);
		th_sendf(be, "{s:s, s:s, s:i}", "type", "chunk", "id", id, "data", i);
	}
	th_sendf(be, "{s:s, s:b, s:s}", "id", id, "ok", 1, "result", "done");
	for (int i = 0; i < 5; i++) {
		j = th_next(fe);
		ck_assert_str_eq(th_str(j, "type"), "chunk");
		ck_assert_str_eq(th_str(j, "id"), "s");
		ck_assert_int_eq(json_integer_value(th_get(j, "data")), i);
		json_decref(j);
	}
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "result"), "done");
	json_decref(j);
}
END_TEST

START_TEST(test_caller_cancel)
{
	const char *id;
	json_t *j;

	th_send(fe, "{\"id\":\"x\",\"method\":\"api.echo\"}");
	id = forwarded();
	th_send(fe, "{\"type\":\"cancel\",\"id\":\"x\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "CANCELLED");
	json_decref(j);
	j = th_next(be);
	ck_assert_str_eq(th_str(j, "id"), id);
	ck_assert_str_eq(th_str(j, "reason"), "cancelled");
	json_decref(j);
	/* A second cancel for the same id is ignored. */
	th_send(fe, "{\"type\":\"cancel\",\"id\":\"x\"}");
	ck_assert_ptr_null(th_next(fe));
}
END_TEST

START_TEST(test_callee_gone_fails_pending_calls)
{
	json_t *j;

	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	th_send(fe, "{\"id\":2,\"method\":\"api.add\"}");
	th_drain(be);
	th_gone(be);
	for (int i = 0; i < 2; i++) {
		j = th_next(fe);
		ck_assert_str_eq(th_str(j, "error.code"), "BACKEND_UNAVAILABLE");
		ck_assert_str_eq(th_str(j, "error.data.reason"), "gone");
		json_decref(j);
	}
	th_drain(fe); /* backend_error, session_left */
	th_send(fe, "{\"id\":3,\"method\":\"api.echo\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "METHOD_NOT_FOUND");
	json_decref(j);
}
END_TEST

START_TEST(test_caller_gone_cancels_callee)
{
	const char *id;
	json_t *j;

	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	id = forwarded();
	th_gone(fe);
	j = th_next(be);
	ck_assert_str_eq(th_str(j, "type"), "cancel");
	ck_assert_str_eq(th_str(j, "id"), id);
	ck_assert_str_eq(th_str(j, "reason"), "caller_gone");
	json_decref(j);
	ck_assert_uint_eq(map_count(hub.calls), 0);
}
END_TEST

START_TEST(test_error_passthrough_and_default_code)
{
	const char *id;
	json_t *j;

	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	id = forwarded();
	th_sendf(be, "{s:s, s:b, s:{s:s, s:s}}", "id", id, "ok", 0, "error", "name",
		 "ValueError", "message", "bad");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "BACKEND_ERROR");
	ck_assert_str_eq(th_str(j, "error.name"), "ValueError");
	json_decref(j);
	th_send(fe, "{\"id\":2,\"method\":\"api.echo\"}");
	id = forwarded();
	th_sendf(be, "{s:s, s:{s:s, s:s}}", "id", id, "error", "code", "MY_CODE",
		 "message", "m");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "MY_CODE");
	json_decref(j);
}
END_TEST

START_TEST(test_pending_limit_queue_full)
{
	json_t *j;

	th_cfg.max_pending_calls = 2;
	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	th_send(fe, "{\"id\":2,\"method\":\"api.echo\"}");
	th_send(fe, "{\"id\":3,\"method\":\"api.echo\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "QUEUE_FULL");
	ck_assert_int_eq(json_integer_value(th_get(j, "error.data.queue_len")), 2);
	json_decref(j);
}
END_TEST

START_TEST(test_duplicate_pending_id_refused)
{
	json_t *j;

	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "INVALID_REQUEST");
	json_decref(j);
	ck_assert_uint_eq(map_count(hub.calls), 1);
}
END_TEST

START_TEST(test_backend_calls_frontend)
{
	json_t *j;

	th_send(fe, "{\"id\":1,\"method\":\"avd.register\",\"params\":{\"methods\":[\"window.main.eval_js\"]}}");
	th_drain(fe);
	th_send(be, "{\"id\":\"b1\",\"method\":\"window.main.eval_js\",\"params\":{\"script\":\"1\"}}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "method"), "window.main.eval_js");
	ck_assert_str_eq(th_str(j, "caller"), be->id);
	json_decref(j);
}
END_TEST

START_TEST(test_unregister)
{
	json_t *j;

	th_send(be, "{\"id\":9,\"method\":\"avd.unregister\",\"params\":{\"methods\":[\"api.add\",\"api.zzz\"]}}");
	j = th_next(be);
	ck_assert_int_eq(json_array_size(th_get(j, "result.methods")), 1);
	json_decref(j);
	ck_assert_ptr_null(map_get(hub.methods, "api.add", 7));
	ck_assert_ptr_nonnull(map_get(hub.methods, "api.echo", 8));
}
END_TEST

START_TEST(test_shutdown_event_loop_closed)
{
	json_t *j;

	th_send(fe, "{\"id\":1,\"method\":\"api.echo\"}");
	th_drain(be);
	router_shutdown();
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "EVENT_LOOP_CLOSED");
	json_decref(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("calls");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_forward_and_answer);
	tcase_add_test(tc, test_default_timeout_forwarded);
	tcase_add_test(tc, test_method_not_found_at_once);
	tcase_add_test(tc, test_register_all_or_nothing);
	tcase_add_test(tc, test_timeout_cancels_callee_and_counts_late);
	tcase_add_test(tc, test_zero_timeout_never_fires);
	tcase_add_test(tc, test_chunks_rearm_timeout_and_keep_order);
	tcase_add_test(tc, test_caller_cancel);
	tcase_add_test(tc, test_callee_gone_fails_pending_calls);
	tcase_add_test(tc, test_caller_gone_cancels_callee);
	tcase_add_test(tc, test_error_passthrough_and_default_code);
	tcase_add_test(tc, test_pending_limit_queue_full);
	tcase_add_test(tc, test_duplicate_pending_id_refused);
	tcase_add_test(tc, test_backend_calls_frontend);
	tcase_add_test(tc, test_unregister);
	tcase_add_test(tc, test_shutdown_event_loop_closed);
	suite_add_tcase(s, tc);
	return th_run(s);
}
