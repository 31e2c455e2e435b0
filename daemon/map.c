/*
 * map.c - a chained hash map from byte-string keys to borrowed pointers.
 *
 * Keys come from peers (method names, call ids), so the hash is seeded at
 * start-up: a client cannot pre-compute keys that all land in one bucket.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "avd.h"

struct entry {
	struct entry *next;
	uint64_t hash;
	void *val;
	size_t klen;
	char key[];
};

struct map {
	struct entry **b;
	size_t nb, count;
};

static uint64_t seed;

static uint64_t
hash_key(const char *k, size_t n)
{
	/* FNV-1a over a random seed, finished with a murmur-style mix. */
	uint64_t h = 1469598103934665603ull ^ seed;

	if (!seed) {
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = (uint64_t)(uintptr_t)&seed ^ 0x9e3779b97f4a7c15ull;
		seed |= 1;
		h = 1469598103934665603ull ^ seed;
	}
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

struct map *
map_new(void)
{
	struct map *m = xcalloc(1, sizeof(*m));

	m->nb = 16;
	m->b = xcalloc(m->nb, sizeof(*m->b));
	return m;
}

void
map_free(struct map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		struct entry *e = m->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->b);
	free(m);
}

static struct entry **
find(const struct map *m, const char *key, size_t klen, uint64_t h)
{
	struct entry **pe = &m->b[h & (m->nb - 1)];

	for (; *pe; pe = &(*pe)->next)
		if ((*pe)->hash == h && (*pe)->klen == klen &&
		    !memcmp((*pe)->key, key, klen))
			break;
	return pe;
}

void *
map_get(const struct map *m, const char *key, size_t klen)
{
	struct entry *e = *find(m, key, klen, hash_key(key, klen));
	return e ? e->val : NULL;
}

static void
grow(struct map *m)
{
	size_t nb = m->nb * 2;
	struct entry **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < m->nb; i++) {
		struct entry *e = m->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void
map_set(struct map *m, const char *key, size_t klen, void *val)
{
	uint64_t h = hash_key(key, klen);
	struct entry **pe = find(m, key, klen, h), *e;

	if (*pe) {
		(*pe)->val = val;
		return;
	}
	e = xmalloc(sizeof(*e) + klen + 1);
	e->hash = h;
	e->val = val;
	e->klen = klen;
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	e->next = NULL;
	*pe = e;
	if (++m->count > m->nb)
		grow(m);
}

void *
map_del(struct map *m, const char *key, size_t klen)
{
	struct entry **pe = find(m, key, klen, hash_key(key, klen)), *e = *pe;
	void *val;

	if (!e)
		return NULL;
	*pe = e->next;
	val = e->val;
	free(e);
	m->count--;
	return val;
}

size_t
map_count(const struct map *m)
{
	return m ? m->count : 0;
}

void
map_each(const struct map *m, void (*fn)(const char *, void *, void *),
	 void *arg)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++)
		for (struct entry *e = m->b[i]; e; e = e->next)
			fn(e->key, e->val, arg);
}
