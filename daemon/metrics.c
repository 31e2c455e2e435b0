/*
 * metrics.c - every figure avd counts, in two renderings from one table:
 * JSON for avd.stats and Prometheus text for /metrics, so the two can
 * never disagree about what exists.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avd.h"

static const struct counter {
	const char *name, *help;
	size_t off;
} counters[] = {
#define C(f, h) { #f, h, offsetof(struct stats, f) }
	C(calls_started, "Calls routed to another session."),
	C(calls_completed, "Calls answered successfully."),
	C(calls_failed, "Calls that ended with an error, any code."),
	C(calls_timed_out, "Calls whose timeout passed in silence."),
	C(calls_cancelled, "Calls cancelled by their caller."),
	C(late_answers, "Answers that arrived after their call had ended."),
	C(events_published, "Events published by sessions."),
	C(events_delivered, "Event copies queued for subscribers."),
	C(events_dropped, "Event copies dropped for slow readers."),
	C(bytes_in, "Message bytes received."),
	C(bytes_out, "Message bytes written."),
	C(messages_in, "Messages received."),
	C(messages_out, "Messages written."),
	C(sessions_opened, "Sessions opened since start."),
	C(slow_consumers_closed, "Sessions closed as slow consumers."),
	C(backend_restarts, "Restarts of supervised backends."),
#undef C
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))

static uint64_t
value(const struct counter *c)
{
	return *(const uint64_t *)((const char *)&hub.st + c->off);
}

json_t *
metrics_json(void)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "sessions",
			      (json_int_t)hub.nsessions, "frontends",
			      (json_int_t)hub.nfrontends, "backends",
			      (json_int_t)hub.nbackends, "methods",
			      (json_int_t)map_count(hub.methods), "pending_calls",
			      (json_int_t)map_count(hub.calls), "queue_high_water",
			      (json_int_t)hub.st.queue_high_water);
	json_t *by_code = json_object(), *buckets = json_array();
	uint64_t cum = 0;

	for (size_t i = 0; i < NCOUNTERS; i++)
		json_object_set_new(j, counters[i].name,
				    json_integer((json_int_t)value(&counters[i])));
	for (int c = 1; c < AVD_E__COUNT; c++)
		if (hub.st.failed_by_code[c])
			json_object_set_new(by_code, err_code_str((enum avd_code)c),
					    json_integer((json_int_t)hub.st.failed_by_code[c]));
	json_object_set_new(j, "failed_by_code", by_code);
	for (int b = 0; b <= LATENCY_BUCKETS; b++) {
		cum += hub.st.latency[b];
		json_array_append_new(
			buckets,
			json_pack("{s:o, s:I}", "le",
				  b < LATENCY_BUCKETS
					  ? json_real((double)latency_bounds_us[b] / 1e6)
					  : json_string("+Inf"),
				  "count", (json_int_t)cum));
	}
	json_object_set_new(j, "call_latency",
			    json_pack("{s:o, s:f, s:I}", "buckets", buckets,
				      "sum_seconds",
				      (double)hub.st.latency_sum_us / 1e6, "count",
				      (json_int_t)hub.st.latency_count));
	return j;
}

char *
metrics_text(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	uint64_t cum = 0;

	if (!f)
		return NULL;
	fprintf(f, "# HELP avd_sessions Sessions connected now, by role.\n"
		   "# TYPE avd_sessions gauge\n"
		   "avd_sessions{role=\"frontend\"} %u\n"
		   "avd_sessions{role=\"backend\"} %u\n",
		hub.nfrontends, hub.nbackends);
	fprintf(f, "# HELP avd_methods Methods registered now.\n"
		   "# TYPE avd_methods gauge\navd_methods %zu\n",
		map_count(hub.methods));
	fprintf(f, "# HELP avd_pending_calls Calls in flight now.\n"
		   "# TYPE avd_pending_calls gauge\navd_pending_calls %zu\n",
		map_count(hub.calls));
	fprintf(f, "# HELP avd_queue_high_water_bytes Largest outbound queue any "
		   "session has had.\n"
		   "# TYPE avd_queue_high_water_bytes gauge\n"
		   "avd_queue_high_water_bytes %zu\n",
		hub.st.queue_high_water);
	for (size_t i = 0; i < NCOUNTERS; i++)
		fprintf(f, "# HELP avd_%s_total %s\n# TYPE avd_%s_total counter\n"
			   "avd_%s_total %llu\n",
			counters[i].name, counters[i].help, counters[i].name,
			counters[i].name, (unsigned long long)value(&counters[i]));
	fprintf(f, "# HELP avd_calls_failed_by_code_total Failed calls by error code.\n"
		   "# TYPE avd_calls_failed_by_code_total counter\n");
	for (int c = 1; c < AVD_E__COUNT; c++)
		fprintf(f, "avd_calls_failed_by_code_total{code=\"%s\"} %llu\n",
			err_code_str((enum avd_code)c),
			(unsigned long long)hub.st.failed_by_code[c]);
	fprintf(f, "# HELP avd_call_duration_seconds Time from forwarding a call to "
		   "its answer.\n# TYPE avd_call_duration_seconds histogram\n");
	for (int b = 0; b < LATENCY_BUCKETS; b++) {
		cum += hub.st.latency[b];
		fprintf(f, "avd_call_duration_seconds_bucket{le=\"%g\"} %llu\n",
			(double)latency_bounds_us[b] / 1e6, (unsigned long long)cum);
	}
	fprintf(f, "avd_call_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		   "avd_call_duration_seconds_sum %.6f\n"
		   "avd_call_duration_seconds_count %llu\n",
		(unsigned long long)hub.st.latency_count,
		(double)hub.st.latency_sum_us / 1e6,
		(unsigned long long)hub.st.latency_count);
	fclose(f);
	return buf;
}
