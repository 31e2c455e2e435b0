/* check_outq.c - lane order, byte limits, dropping and slow consumers. */
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

static struct frame *
mk(const char *text)
{
	return frame_from_bytes(text, strlen(text));
}

START_TEST(test_lane_order)
{
	struct outq q = { 0 };
	struct frame *e1 = mk("e1"), *r1 = mk("r1"), *c1 = mk("c1"), *e2 = mk("e2");
	const char *want[] = { "c1", "r1", "e1", "e2" };

	outq_push(&q, LANE_EVENT, e1);
	outq_push(&q, LANE_RESPONSE, r1);
	outq_push(&q, LANE_EVENT, e2);
	outq_push(&q, LANE_CONTROL, c1);
	ck_assert_uint_eq(q.bytes, 8);
	for (int i = 0; i < 4; i++) {
		struct frame *f = outq_pop(&q);
		ck_assert(!memcmp(frame_data(f), want[i], 2));
		frame_unref(f);
	}
	ck_assert(outq_empty(&q));
	ck_assert_uint_eq(q.high_water, 8);
	frame_unref(e1), frame_unref(r1), frame_unref(c1), frame_unref(e2);
	outq_clear(&q);
}
END_TEST

START_TEST(test_ring_wraps_and_grows)
{
	struct outq q = { 0 };
	char buf[16];
	int next_out = 0;

	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 7; i++) {
			struct frame *f;
			snprintf(buf, sizeof(buf), "%06d", round * 7 + i);
			f = mk(buf);
			outq_push(&q, LANE_EVENT, f);
			frame_unref(f);
		}
		for (int i = 0; i < 5; i++) {
			struct frame *f = outq_pop(&q);
			snprintf(buf, sizeof(buf), "%06d", next_out++);
			ck_assert(!memcmp(frame_data(f), buf, 6));
			frame_unref(f);
		}
	}
	outq_clear(&q);
	ck_assert(outq_empty(&q));
}
END_TEST

START_TEST(test_result_jumps_event_backlog)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *fe = th_open("frontend", "reader");
	struct session *be = th_open("backend", "py");
	json_t *j;
	char id[32];

	th_send(fe, "{\"id\":1,\"method\":\"avd.subscribe\",\"params\":{\"events\":[\"tick\"]}}");
	th_drain(fe);
	th_send(be, "{\"type\":\"ready\",\"handlers\":[\"api.x\"]}");
	th_drain(fe);
	th_send(fe, "{\"id\":2,\"method\":\"api.x\"}");
	for (int i = 0; i < 10000; i++)
		th_send(pub, "{\"type\":\"event\",\"event\":\"tick\",\"data\":1}");
	j = th_next(be);
	snprintf(id, sizeof(id), "%s", th_str(j, "id"));
	json_decref(j);
	th_sendf(be, "{s:s, s:b, s:s}", "id", id, "ok", 1, "result", "first");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "result"), "first");
	json_decref(j);
	ck_assert_int_eq(th_drain(fe), 10000);
}
END_TEST

START_TEST(test_events_dropped_then_told)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *fe = th_open("frontend", "slow");
	json_t *j;
	int events = 0;

	th_cfg.max_queue_bytes = 4096;
	th_send(fe, "{\"id\":1,\"method\":\"avd.subscribe\",\"params\":{\"events\":[\"tick\"]}}");
	th_drain(fe);
	for (int i = 0; i < 500; i++)
		th_send(pub, "{\"type\":\"event\",\"event\":\"tick\",\"data\":\"0123456789012345678901234567890123456789\"}");
	ck_assert_uint_le(fe->q.bytes, 4096);
	ck_assert_uint_gt(hub.st.events_dropped, 0);
	while ((j = th_next(fe))) {
		if (!strcmp(th_str(j, "event"), "tick"))
			events++;
		else {
			ck_assert_str_eq(th_str(j, "event"), "avd:dropped");
			ck_assert_int_eq(json_integer_value(th_get(j, "data.count")),
					 500 - events);
			ck_assert_ptr_null(th_next(fe));
		}
		json_decref(j);
	}
	ck_assert_int_gt(events, 10);
	ck_assert_int_eq(th_close_code(fe), 0);
}
END_TEST

START_TEST(test_slow_consumer_closed_and_settled)
{
	struct session *fe = th_open("frontend", "frozen");
	struct session *be = th_open("backend", "py");
	json_t *j;
	char id[32];

	th_cfg.max_queue_bytes = 4096;
	th_send(be, "{\"type\":\"ready\",\"handlers\":[\"api.stream\"]}");
	th_drain(be);
	th_send(fe, "{\"id\":1,\"method\":\"api.stream\"}");
	j = th_next(be);
	snprintf(id, sizeof(id), "%s", th_str(j, "id"));
	json_decref(j);
	for (int i = 0; i < 200 && fe->state != SESSION_CLOSING; i++)
		th_sendf(be, "{s:s, s:s, s:s}", "type", "chunk", "id", id, "data",
			 "chunk chunk chunk chunk chunk chunk chunk chunk chunk chunk");
	ck_assert_int_eq(fe->state, SESSION_CLOSING);
	ck_assert_int_eq(th_close_code(fe), 1008);
	ck_assert_uint_eq(hub.st.slow_consumers_closed, 1);
	th_gone(fe);
	j = th_next(be);
	ck_assert_str_eq(th_str(j, "reason"), "caller_gone");
	json_decref(j);
}
END_TEST

START_TEST(test_call_to_full_reader_queue_full)
{
	struct session *pub = th_open("frontend", "pub");
	struct session *fe = th_open("frontend", "caller");
	struct session *be = th_open("backend", "frozen");
	json_t *j;

	th_cfg.max_queue_bytes = 4096;
	th_send(be, "{\"type\":\"ready\",\"handlers\":[\"api.x\"]}");
	th_send(be, "{\"id\":1,\"method\":\"avd.subscribe\",\"params\":{\"events\":[\"*\"]}}");
	for (int i = 0; i < 200; i++)
		th_send(pub, "{\"type\":\"event\",\"event\":\"tick\",\"data\":\"0123456789012345678901234567890123456789\"}");
	th_send(fe, "{\"id\":1,\"method\":\"api.x\"}");
	th_drain(fe);
	th_send(fe, "{\"id\":2,\"method\":\"api.x\"}");
	j = th_next(fe);
	ck_assert_str_eq(th_str(j, "error.code"), "QUEUE_FULL");
	ck_assert(json_is_integer(th_get(j, "error.data.queue_len")));
	json_decref(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("outq");
	TCase *tc = tcase_create("lanes");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lane_order);
	tcase_add_test(tc, test_ring_wraps_and_grows);
	tcase_add_test(tc, test_result_jumps_event_backlog);
	tcase_add_test(tc, test_events_dropped_then_told);
	tcase_add_test(tc, test_slow_consumer_closed_and_settled);
	tcase_add_test(tc, test_call_to_full_reader_queue_full);
	suite_add_tcase(s, tc);
	return th_run(s);
}
