/*
 * utf8.c - repairs text that jansson would otherwise refuse whole.
 *
 * A producer that cuts a UTF-16 string between the halves of a surrogate
 * pair sends "\ud83d" on its own.  jansson rejects the entire message for
 * that, so avd rewrites lone halves before parsing: to U+FFFD ("\ufffd" is
 * as long as "\ud83d", so in place), or, where the half could join the
 * next or previous delta of a stream, to a marker that delta.c resolves.
 */
#include "config.h"

#include <string.h>

#include "avd.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The code unit of a "\uXXXX" escape at p (p[0] == '\\'), or -1. */
static long
escape_unit(const char *p, const char *end)
{
	long v = 0;

	if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	for (int i = 2; i < 6; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* One place the surrogate repair may rewrite in the JSON text. */
struct edit {
	size_t off, len; /* the bytes replaced: "\udXXX" (6), "\ufdXX" (6), raw (3) */
	long unit;       /* the code unit or noncharacter there */
	bool marker;     /* a half that may join a neighbouring delta */
};

/* Offset just past the closing quote of the string whose content starts
 * at p, or end when it never closes. */
static const char *
string_end(const char *p, const char *end)
{
	while (p < end && *p != '"')
		p += *p == '\\' ? 2 : 1;
	return p < end ? p + 1 : end;
}

/* True when the string that ends just before q is an object key. */
static bool
followed_by_colon(const char *q, const char *end)
{
	while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	return q < end && *q == ':';
}

static void
add_edit(struct edit **v, size_t *n, size_t *cap, struct edit e)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = e;
}

/*
 * Markers (see delta.c) are three noncharacters: U+FDD0 (high half),
 * U+FDD1 (low half) or U+FDD2 (a literal noncharacter of the input), then
 * two carrying five bits each.  When a message needs markers, the input's
 * own noncharacters are encoded too, so they can never be mistaken for one.
 */
static char *
put_marker(char *o, unsigned type, unsigned bits)
{
	return o + sprintf(o, "\\u%04X\\u%04X\\u%04X", 0xFDD0 + type,
			   0xFDD0 + (bits >> 5), 0xFDD0 + (bits & 31));
}

char *
utf8_fix_surrogates(char *buf, size_t *plen, bool *marked)
{
	char *p = buf, *end = buf + *plen, *out, *o;
	struct edit *v = NULL;
	size_t n = 0, cap = 0, nmark = 0, ncopy = 0;
	bool in_string = false;
	const char *str_start = NULL;

	*marked = false;
	while (p < end) {
		char *q;

		if (!in_string) {
			q = memchr(p, '"', (size_t)(end - p));
			if (!q)
				break;
			in_string = true;
			str_start = q + 1;
			p = q + 1;
			continue;
		}
		while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p != 0xEF)
			p++;
		if (p >= end)
			break;
		if ((unsigned char)*p == 0xEF) {
			if (end - p >= 3 && (unsigned char)p[1] == 0xB7 &&
			    (unsigned char)p[2] >= 0x90 && (unsigned char)p[2] <= 0xAF)
				add_edit(&v, &n, &cap,
					 (struct edit){ (size_t)(p - buf), 3,
							0xFDD0 + ((unsigned char)p[2] - 0x90), false });
			p++;
			continue;
		}
		if (*p == '"') {
			in_string = false;
			p++;
			continue;
		}
		long u = escape_unit(p, end);
		if (u < 0) {
			p += 2;
			continue;
		}
		if (u >= 0xFDD0 && u <= 0xFDEF) {
			add_edit(&v, &n, &cap, (struct edit){ (size_t)(p - buf), 6, u, false });
			p += 6;
			continue;
		}
		if (u >= 0xD800 && u <= 0xDBFF) {
			long lo = escape_unit(p + 6, end);
			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				p += 12;
				continue;
			}
		} else if (!(u >= 0xDC00 && u <= 0xDFFF)) {
			p += 6;
			continue;
		}
		struct edit e = { (size_t)(p - buf), 6, u, false };
		/* A high half ending a string value, or a low half starting
		 * one, is what a producer cutting UTF-16 text leaves behind. */
		if (u <= 0xDBFF)
			e.marker = p + 6 < end && p[6] == '"' && !followed_by_colon(p + 7, end);
		else
			e.marker = p == str_start &&
				   !followed_by_colon(string_end(p, end), end);
		nmark += e.marker;
		add_edit(&v, &n, &cap, e);
		p += 6;
	}
	if (!nmark) {
		/* No stream halves: lone halves become U+FFFD in place and the
		 * input's noncharacters pass through untouched. */
		for (size_t i = 0; i < n; i++)
			if (v[i].unit < 0xFDD0)
				memcpy(buf + v[i].off, "\\ufffd", 6);
		free(v);
		return buf;
	}
	for (size_t i = 0; i < n; i++)
		ncopy += v[i].unit >= 0xFDD0;
	/* Each marker is three escapes (18 bytes) where the original was 3 or 6. */
	out = o = xmalloc(*plen + (nmark + ncopy) * 15 + 1);
	p = buf;
	for (size_t i = 0; i < n; i++) {
		memcpy(o, p, (size_t)(buf + v[i].off - p));
		o += buf + v[i].off - p;
		if (v[i].unit >= 0xFDD0)
			o = put_marker(o, 2, (unsigned)(v[i].unit - 0xFDD0));
		else if (v[i].marker)
			o = put_marker(o, v[i].unit <= 0xDBFF ? 0 : 1,
				       (unsigned)(v[i].unit & 0x3FF));
		else
			o += sprintf(o, "\\ufffd");
		p = buf + v[i].off + v[i].len;
	}
	memcpy(o, p, (size_t)(end - p));
	o += end - p;
	*o = '\0';
	*plen = (size_t)(o - out);
	*marked = true;
	free(v);
	return out;
}

bool
utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		int n;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= (size_t)n)
			return false;
		for (int k = 1; k <= n; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += (size_t)n + 1;
	}
	return true;
}

/* Length of the valid UTF-8 sequence at p, or 0 when it is not one. */
static size_t
seq_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0)
		n = 2, cp = c & 0x1F;
	else if ((c & 0xF0) == 0xE0)
		n = 3, cp = c & 0x0F;
	else if ((c & 0xF8) == 0xF0)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3F);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

size_t
utf8_boundary(const unsigned char *p, size_t len)
{
	size_t back = 0;

	/* Step back over at most three continuation bytes to a lead byte. */
	while (back < 4 && back < len && (p[len - 1 - back] & 0xC0) == 0x80)
		back++;
	if (back < len) {
		unsigned char lead = p[len - 1 - back];
		size_t need = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2
					   : (lead & 0xF0) == 0xE0 ? 3
					   : (lead & 0xF8) == 0xF0 ? 4 : 1;
		if (back + 1 < need)
			return len - 1 - back; /* the last character is cut */
	}
	return len;
}

char *
utf8_repair(const unsigned char *p, size_t len, size_t *out_len)
{
	/* Each bad byte becomes three: U+FFFD is EF BF BD. */
	char *out = xmalloc(len * 3 + 1);
	size_t i = 0, o = 0;

	while (i < len) {
		size_t n = seq_len(p + i, len - i);
		if (n) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}
