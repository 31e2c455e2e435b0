/*
 * delta.c - whole characters across the text deltas of a stream.
 *
 * Producers of streamed text (AI chat tokens) cut UTF-16 strings anywhere,
 * sometimes between the two halves of a surrogate pair.  utf8.c leaves a
 * marker where such a half ended or started a string value; here the marker
 * is resolved against the stream's state: the two halves become one
 * character in the later delta, a half with no partner becomes U+FFFD, and
 * markers anywhere else become U+FFFD too.
 *
 * A marker is three noncharacters: U+FDD0 (high half), U+FDD1 (low half)
 * or U+FDD2 (a noncharacter the input itself held), then two characters
 * U+FDD0+n carrying five bits each of the value.  In UTF-8 each is EF B7 xx
 * with xx in 90..AF.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "avd.h"

#define MARK_LEN 9
static const char replacement[] = "\xEF\xBF\xBD";

/* What a marker at p stands for: a surrogate half (D800..DFFF), an input
 * noncharacter (FDD0..FDEF), or 0 when p holds no marker. */
static uint16_t
marker_at(const char *p, size_t avail)
{
	const unsigned char *u = (const unsigned char *)p;
	unsigned v[3];

	if (avail < MARK_LEN)
		return 0;
	for (int i = 0; i < 3; i++) {
		if (u[3 * i] != 0xEF || u[3 * i + 1] != 0xB7 || u[3 * i + 2] < 0x90 ||
		    u[3 * i + 2] > 0xAF)
			return 0;
		v[i] = u[3 * i + 2] - 0x90;
	}
	if (v[0] == 2)
		return (uint16_t)(0xFDD0 + ((v[1] << 5) | v[2]));
	if (v[0] > 2)
		return 0;
	return (uint16_t)((v[0] ? 0xDC00 : 0xD800) | (v[1] << 5) | v[2]);
}

static bool
has_marker(const char *s, size_t len)
{
	for (const char *p = memchr(s, 0xEF, len); p;
	     p = memchr(p + 1, 0xEF, len - (size_t)(p + 1 - s)))
		if (marker_at(p, len - (size_t)(p - s)))
			return true;
	return false;
}

/* Append s[0..len) to out: a lone half's marker becomes U+FFFD, an input
 * noncharacter's marker the noncharacter again. */
static size_t
copy_scrubbed(char *out, const char *s, size_t len)
{
	size_t o = 0, i = 0;
	uint16_t m;

	while (i < len) {
		if ((unsigned char)s[i] == 0xEF && (m = marker_at(s + i, len - i))) {
			if (m >= 0xFDD0) {
				out[o++] = (char)0xEF;
				out[o++] = (char)0xB7;
				out[o++] = (char)(0x90 + (m - 0xFDD0));
			} else {
				memcpy(out + o, replacement, 3);
				o += 3;
			}
			i += MARK_LEN;
		} else {
			out[o++] = s[i++];
		}
	}
	return o;
}

json_t *
delta_join(const char *s, size_t len, uint16_t *held)
{
	char *out = xmalloc(len + 8);
	size_t o = 0;
	uint16_t first = marker_at(s, len), last = 0;

	if (first >= 0xFDD0)
		first = 0; /* an input noncharacter, not a half */
	json_t *j;

	if (*held) {
		if (first >= 0xDC00 && first <= 0xDFFF) {
			/* The held high half and this low half are one character. */
			uint32_t cp = 0x10000 + (((uint32_t)*held - 0xD800) << 10) +
				      (first - 0xDC00);
			out[o++] = (char)(0xF0 | (cp >> 18));
			out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
			s += MARK_LEN;
			len -= MARK_LEN;
		} else {
			memcpy(out + o, replacement, 3);
			o += 3;
		}
		*held = 0;
	}
	if (len >= MARK_LEN) {
		last = marker_at(s + len - MARK_LEN, MARK_LEN);
		if (last >= 0xD800 && last <= 0xDBFF)
			len -= MARK_LEN; /* held for the next delta */
		else
			last = 0;
	}
	o += copy_scrubbed(out + o, s, len);
	*held = last;
	j = json_stringn_nocheck(out, o);
	free(out);
	return j;
}

json_t *
delta_of(json_t *data)
{
	json_t *d = json_object_get(data, "delta");

	return json_is_string(d) ? d : NULL;
}

void
delta_scrub(json_t *j)
{
	size_t i;
	const char *key;
	json_t *v;
	void *tmp;

	switch (json_typeof(j)) {
	case JSON_STRING:
		if (has_marker(json_string_value(j), json_string_length(j))) {
			char *out = xmalloc(json_string_length(j) + 1);
			size_t n = copy_scrubbed(out, json_string_value(j),
						 json_string_length(j));
			json_string_setn_nocheck(j, out, n);
			free(out);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(j, i, v)
			delta_scrub(v);
		break;
	case JSON_OBJECT:
		json_object_foreach_safe(j, tmp, key, v)
			delta_scrub(v);
		break;
	default:
		break;
	}
}
