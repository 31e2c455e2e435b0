/*
 * hub.c - the process-wide state every module shares: sessions, the method
 * table, pending calls and counters.  There is exactly one hub, touched
 * only by the event-loop thread.
 */
#include "config.h"

#include <string.h>

#include "avd.h"

struct hub hub;

void
hub_init(struct config *cfg)
{
	memset(&hub, 0, sizeof(hub));
	hub.cfg = cfg;
	hub.by_id = map_new();
	hub.methods = map_new();
	hub.calls = map_new();
	pubsub_init();
}

void
hub_shutdown(void)
{
	hub.shutting_down = true;
	router_shutdown();
	for (struct session *s = hub.sessions; s; s = s->next)
		session_close(s, 1001, "avd is shutting down", false);
}

void
hub_free(void)
{
	while (hub.sessions)
		session_gone(hub.sessions);
	pubsub_free();
	map_free(hub.by_id);
	map_free(hub.methods);
	map_free(hub.calls);
	timer_reset();
	memset(&hub, 0, sizeof(hub));
}

const uint64_t latency_bounds_us[LATENCY_BUCKETS] = {
	100,    250,    500,     1000,    2500,    5000,     10000,    25000, 50000,
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};

void
hub_record_latency(uint64_t us)
{
	int b = 0;

	while (b < LATENCY_BUCKETS && us > latency_bounds_us[b])
		b++;
	hub.st.latency[b]++;
	hub.st.latency_sum_us += us;
	hub.st.latency_count++;
}
