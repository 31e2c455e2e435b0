/*
 * outq.c - a session's outbound queue: three FIFO rings, one per lane.
 *
 * Rings grow on demand and start empty, so an idle session costs only the
 * struct itself.  Which lane a frame goes to, and whether it may be
 * dropped, is the session's decision; this module only keeps order.
 */
#include "config.h"

#include <stdlib.h>

#include "avd.h"

static void
ring_push(struct lane_ring *r, struct frame *f)
{
	if (r->count == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 8;
		struct frame **v = xmalloc(cap * sizeof(*v));
		for (uint32_t i = 0; i < r->count; i++)
			v[i] = r->v[(r->head + i) % r->cap];
		free(r->v);
		r->v = v;
		r->cap = cap;
		r->head = 0;
	}
	r->v[(r->head + r->count) % r->cap] = f;
	r->count++;
}

void
outq_push(struct outq *q, enum lane l, struct frame *f)
{
	ring_push(&q->lane[l], frame_ref(f));
	q->bytes += f->len;
	if (q->bytes > q->high_water)
		q->high_water = q->bytes;
}

struct frame *
outq_peek(const struct outq *q)
{
	for (int l = 0; l < LANE__COUNT; l++) {
		const struct lane_ring *r = &q->lane[l];
		if (r->count)
			return r->v[r->head];
	}
	return NULL;
}

struct frame *
outq_pop(struct outq *q)
{
	for (int l = 0; l < LANE__COUNT; l++) {
		struct lane_ring *r = &q->lane[l];
		struct frame *f;

		if (!r->count)
			continue;
		f = r->v[r->head];
		r->head = (r->head + 1) % r->cap;
		r->count--;
		q->bytes -= f->len;
		/* Give back a burst's memory once the lane is idle again. */
		if (!r->count && r->cap > 64) {
			free(r->v);
			r->v = NULL;
			r->cap = r->head = 0;
		}
		return f;
	}
	return NULL;
}

void
outq_clear(struct outq *q)
{
	struct frame *f;

	while ((f = outq_pop(q)))
		frame_unref(f);
	for (int l = 0; l < LANE__COUNT; l++) {
		free(q->lane[l].v);
		q->lane[l].v = NULL;
		q->lane[l].cap = q->lane[l].head = 0;
	}
	q->bytes = 0;
}
