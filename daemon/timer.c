/*
 * timer.c - every deadline of the daemon in one binary min-heap.
 *
 * Call timeouts, hello timeouts and heartbeats are all timers here; the
 * event loop only ever waits for the earliest one, so arming a timer per
 * call costs O(log n) instead of a walk of a sorted list.
 */
#include "config.h"

#include <stdlib.h>

#include "avd.h"

static struct timer **heap;
static uint32_t heap_n, heap_cap;
static void (*wakeup)(void);

static void
place(uint32_t i, struct timer *t)
{
	heap[i] = t;
	t->slot = i + 1;
}

static void
sift_up(uint32_t i)
{
	struct timer *t = heap[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (heap[p]->due <= t->due)
			break;
		place(i, heap[p]);
		i = p;
	}
	place(i, t);
}

static void
sift_down(uint32_t i)
{
	struct timer *t = heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= heap_n)
			break;
		if (c + 1 < heap_n && heap[c + 1]->due < heap[c]->due)
			c++;
		if (t->due <= heap[c]->due)
			break;
		place(i, heap[c]);
		i = c;
	}
	place(i, t);
}

static void
remove_at(uint32_t i)
{
	struct timer *last = heap[--heap_n];

	heap[i]->slot = 0;
	if (i == heap_n)
		return;
	place(i, last);
	sift_down(i);
	sift_up(last->slot - 1);
}

void
timer_arm(struct timer *t, uint64_t delay_ms, timer_fn fn)
{
	struct timer *top = heap_n ? heap[0] : NULL;
	uint64_t old_top_due = top ? top->due : 0;

	if (t->slot)
		remove_at(t->slot - 1);
	t->fn = fn;
	t->due = clock_ms() + delay_ms;
	if (heap_n == heap_cap) {
		heap_cap = heap_cap ? heap_cap * 2 : 64;
		heap = xrealloc(heap, heap_cap * sizeof(*heap));
	}
	place(heap_n++, t);
	sift_up(heap_n - 1);
	if (wakeup && (heap[0] != top || heap[0]->due != old_top_due))
		wakeup();
}

void
timer_cancel(struct timer *t)
{
	if (t->slot)
		remove_at(t->slot - 1);
}

int
timer_run_due(void)
{
	uint64_t now = clock_ms();
	int fired = 0;

	/* A callback may arm or cancel other timers; re-read the top each time. */
	while (heap_n && heap[0]->due <= now) {
		struct timer *t = heap[0];
		remove_at(0);
		fired++;
		t->fn(t);
	}
	return fired;
}

int64_t
timer_next_in(void)
{
	uint64_t now;

	if (!heap_n)
		return -1;
	now = clock_ms();
	return heap[0]->due <= now ? 0 : (int64_t)(heap[0]->due - now);
}

void
timer_set_wakeup(void (*fn)(void))
{
	wakeup = fn;
}

void
timer_reset(void)
{
	for (uint32_t i = 0; i < heap_n; i++)
		heap[i]->slot = 0;
	free(heap);
	heap = NULL;
	heap_n = heap_cap = 0;
}
