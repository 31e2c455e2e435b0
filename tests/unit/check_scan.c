/*
 * check_scan.c - the scanner behind the fast path, against jansson.
 *
 * What matters is one promise: whatever scan_object accepts, jansson reads
 * as the same object.  Besides tables of inputs, a seeded mutation run
 * checks that promise on many broken and odd texts.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testhub.h"

#define MAXM 16

/* Texts the scanner must accept. */
static const char *const accepted[] = {
	"{}",
	" { } ",
	"{\"a\":1}",
	"{\"id\":\"x\",\"method\":\"m\",\"params\":{\"a\":[1,2.5,-3,0,-0.25,true,false,null,\"s\"],\"b\":{}}}",
	"{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
	"{\"u\":\"h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80 \xef\xb7\x90\"}",
	"{\t\"a\" : [ ] ,\"b\":[ {} , [ ] ]}",
	"{\"n\":123456789012345678}",
	"{\"n\":-123456789012345678}",
	"{\"\":0}",
};

/* Texts it must decline: invalid JSON, or left to jansson on purpose. */
static const char *const declined[] = {
	"", " ", "[]", "1", "\"s\"", "null",
	"{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":1 \"b\":2}",
	"{a:1}", "{'a':1}", "{\"a\":1}x", "{\"a\":1}{}", "{\"a\":[1,]}", "{\"a\":[,1]}",
	"{\"a\":[1}", "{\"a\":{]}", "{\"a\":{\"b\"}}", "{\"a\":{\"b\":1,}}",
	"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":+1}", "{\"a\":NaN}",
	"{\"a\":Infinity}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}",
	"{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12G4\"}", "{\"a\":\"unterminated}",
	"{\"a\":\"tab\there\"}",
	"{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf5\x80\x80\x80\"}",
	"{\"a\":\"\xe4\xb8\"}", "{\"a\":\"\x80\"}", "{\"a\":\"\xf0\x8f\xbf\xbf\"}",
	"{\"a\":\"\xf4\x90\x80\x80\"}", "{\"k\xff\":1}", "\xef\xbb\xbf{}",
	/* left to jansson on purpose */
	"{\"a\":1e5}", "{\"a\":1.5E-3}", "{\"a\":1234567890123456789}",
	"{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}",
	"{\"a\":\"\\ud83dx\"}", "{\"a\":\"\\ud83d\\u0041\"}",
	"{\"a\":1,\n\"b\":2}", "{\"a\":[1,\r2]}", "{\"\\u0069d\":1}",
};

START_TEST(test_accepts)
{
	struct scan_member m[MAXM];
	const char *in = accepted[_i];

	json_t *j = json_loads(in, 0, NULL);

	ck_assert_msg(scan_object(in, strlen(in), m, MAXM) >= 0, "declined %s", in);
	ck_assert_ptr_nonnull(j);
	json_decref(j);
}
END_TEST

START_TEST(test_declines)
{
	struct scan_member m[MAXM];
	const char *in = declined[_i];

	ck_assert_msg(scan_object(in, strlen(in), m, MAXM) < 0, "accepted %s", in);
}
END_TEST

START_TEST(test_members)
{
	const char *in = "{\"id\":17, \"method\":\"a.b\",\"params\":{\"x\":[1,\"]\"]},\"s\":\"q\\\"\",\"id\":\"z\"}";
	struct scan_member m[MAXM];

	ck_assert_int_eq(scan_object(in, strlen(in), m, MAXM), 5);
	ck_assert_int_eq((int)m[0].klen, 2);
	ck_assert(!memcmp(m[0].key, "id", 2));
	ck_assert_int_eq(m[0].type, SCAN_NUMBER);
	ck_assert_int_eq((int)m[0].vlen, 2);
	ck_assert(!memcmp(m[1].val, "\"a.b\"", m[1].vlen));
	ck_assert(!m[1].escaped);
	ck_assert_int_eq(m[2].type, SCAN_OBJECT);
	ck_assert_int_eq((int)m[2].vlen, (int)strlen("{\"x\":[1,\"]\"]}"));
	ck_assert(!memcmp(m[2].val, "{\"x\":[1,\"]\"]}", m[2].vlen));
	ck_assert(m[3].escaped);
	ck_assert_int_eq(m[4].type, SCAN_STRING);
}
END_TEST

START_TEST(test_limits)
{
	struct scan_member m[4];
	char deep[4200];
	size_t n = 0;

	/* More members than room: declined, never written past the end. */
	ck_assert_int_lt(scan_object("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}", 31, m, 4), 0);
	ck_assert_int_eq(scan_object("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", 25, m, 4), 4);
	/* Nesting: 1 000 levels scan, 2 000 are left to jansson. */
	n = (size_t)sprintf(deep, "{\"a\":");
	for (int i = 0; i < 1000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 1000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	ck_assert_int_eq(scan_object(deep, n, m, 4), 1);
	n = (size_t)sprintf(deep, "{\"a\":");
	for (int i = 0; i < 2000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 2000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	ck_assert_int_lt(scan_object(deep, n, m, 4), 0);
}
END_TEST

/* Every member the scanner reports is, parsed alone, what jansson has
 * under that name (the last of repeated names, as jansson keeps). */
static void
same_as_jansson(const char *in, size_t len)
{
	struct scan_member m[MAXM];
	int n = scan_object(in, len, m, MAXM);
	json_error_t e;
	json_t *root;

	if (n < 0)
		return;
	root = json_loadb(in, len, 0, &e);
	ck_assert_msg(root != NULL, "scan accepted what jansson refuses (%s): %.*s",
		      e.text, (int)len, in);
	ck_assert(json_is_object(root));
	ck_assert_int_le((int)json_object_size(root), n);
	for (int i = 0; i < n; i++) {
		char key[64];
		json_t *v, *w;

		ck_assert(m[i].klen < sizeof(key));
		memcpy(key, m[i].key, m[i].klen);
		key[m[i].klen] = '\0';
		v = json_loadb(m[i].val, m[i].vlen, JSON_DECODE_ANY, NULL);
		ck_assert_ptr_nonnull(v);
		w = json_object_get(root, key);
		ck_assert_ptr_nonnull(w);
		bool later = false;
		for (int k = i + 1; k < n; k++)
			later |= m[k].klen == m[i].klen && !memcmp(m[k].key, m[i].key, m[i].klen);
		if (!later)
			ck_assert_msg(json_equal(v, w), "member %s differs in %.*s", key,
				      (int)len, in);
		json_decref(v);
	}
	json_decref(root);
}

START_TEST(test_mutations_agree_with_jansson)
{
	static const char *const seeds[] = {
		"{\"id\":1,\"method\":\"api.echo\",\"params\":{\"a\":[1,2,{\"b\":null}],\"s\":\"x\\u00e9\\\"\"}}",
		"{\"type\":\"event\",\"event\":\"chat:delta\",\"data\":{\"delta\":\"\xe4\xb8\xad\xf0\x9f\x98\x80\",\"n\":-0.5}}",
		"{\"id\":\"c7\",\"ok\":true,\"result\":[true,false,null,\"\\ud83d\\ude00\",12]}",
		"{\"a\":{\"a\":{\"a\":[[[]]]}},\"a\":\"dup\"}",
	};
	static const char alphabet[] = "{}[]\":,\\ u0dD8ex-.1tfn\x80\xc3\xa9\xed\xf0";
	unsigned seed = 12345;
	char buf[512];

	for (int round = 0; round < 200000; round++) {
		const char *s = seeds[round % 4];
		size_t len = strlen(s);
		int edits = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 3;

		memcpy(buf, s, len);
		for (int e = 0; e < edits; e++) {
			unsigned r = (seed = seed * 1103515245u + 12345u) >> 8;
			size_t at = r % (len ? len : 1);
			char c = alphabet[(r >> 12) % (sizeof(alphabet) - 1)];
			switch ((r >> 20) % 3) {
			case 0: /* replace */
				buf[at] = c;
				break;
			case 1: /* insert */
				if (len + 1 < sizeof(buf)) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = c;
					len++;
				}
				break;
			default: /* delete */
				if (len) {
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
				break;
			}
		}
		same_as_jansson(buf, len);
	}
}
END_TEST

/* The fast path decodes what the full decoder decodes, to the same. */
START_TEST(test_fast_decode_matches_full)
{
	static const char *const msgs[] = {
		"{\"id\":7,\"method\":\"m.x\",\"params\":{\"a\":[1,\"\\u00e9\"]},\"timeout_ms\":250}",
		"{\"type\":\"call\",\"id\":\"k\",\"method\":\"m\"}",
		"{\"id\":-3,\"ok\":true,\"result\":{\"r\":null}}",
		"{\"id\":\"c9\",\"result\":\"x\"}",
		"{\"type\":\"event\",\"event\":\"a:b\",\"data\":[1],\"echo\":true}",
		"{\"type\":\"event\",\"event\":\"a:b\",\"detail\":{\"k\":\"v\"},\"to\":null}",
		"{\"type\":\"event\",\"event\":\"e\"}",
		"{\"type\":\"chunk\",\"id\":\"c3\",\"data\":{\"delta\":\"\xf0\x9f\x98\x80\"}}",
		"{\"type\":\"chunk\",\"id\":\"c3\"}",
	};

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct avd_err err = { 0 };
		struct msg fast;
		json_t *bad_id, *root;
		char a[256];
		struct framebuf fb;
		struct frame *f;
		json_t *payload, *want;

		strcpy(a, msgs[i]);
		ck_assert_int_eq(msg_decode(a, strlen(a), &fast, &err, &bad_id), 0);
		ck_assert_msg(fast.fast, "not on the fast path: %s", msgs[i]);
		/* The full decoder's view, from jansson alone. */
		root = json_loads(msgs[i], 0, NULL);
		ck_assert_ptr_nonnull(root);
		if (fast.kind == MSG_CALL) {
			ck_assert_str_eq(fast.method, json_string_value(json_object_get(root, "method")));
			want = json_object_get(root, "params");
			ck_assert_int_eq(fast.has_timeout, json_object_get(root, "timeout_ms") != NULL);
			if (fast.has_timeout)
				ck_assert_int_eq(fast.timeout_ms,
						 json_integer_value(json_object_get(root, "timeout_ms")));
		} else if (fast.kind == MSG_RESPONSE) {
			ck_assert(fast.ok);
			want = json_object_get(root, "result");
		} else if (fast.kind == MSG_CHUNK) {
			want = json_object_get(root, "data");
		} else {
			ck_assert_int_eq(fast.kind, MSG_EVENT);
			ck_assert_str_eq(fast.event, json_string_value(json_object_get(root, "event")));
			ck_assert_int_eq(fast.echo, json_is_true(json_object_get(root, "echo")));
			want = json_object_get(root, "data");
			if (!want)
				want = json_object_get(root, "detail");
		}
		if (fast.kind != MSG_EVENT)
			ck_assert(json_equal(fast.id, json_object_get(root, "id")));
		/* What goes out is what came in. */
		frame_begin(&fb, 8);
		msg_put_payload(&fb, &fast);
		f = frame_end(&fb);
		payload = json_loadb((const char *)frame_data(f), f->len, JSON_DECODE_ANY, NULL);
		ck_assert_ptr_nonnull(payload);
		if (want)
			ck_assert(json_equal(payload, want));
		else if (fast.kind == MSG_EVENT)
			ck_assert(json_is_object(payload) && json_object_size(payload) == 0);
		else
			ck_assert(json_is_null(payload));
		/* Parsed on request, the same again. */
		msg_parse_payload(&fast);
		ck_assert(json_equal(payload, fast.kind == MSG_CALL       ? fast.params
					      : fast.kind == MSG_RESPONSE ? fast.result
									  : fast.data));
		json_decref(payload);
		frame_unref(f);
		msg_free(&fast);
		json_decref(root);
	}
}
END_TEST

/* Anything unusual goes the full way, and errors are the full decoder's. */
START_TEST(test_fast_declines)
{
	static const char *const msgs[] = {
		"{\"id\":1,\"method\":\"m\",\"params\":1e3}",
		"{\"id\":1.5,\"method\":\"m\"}",
		"{\"id\":1,\"method\":\"m\",\"timeout_ms\":-1}",
		"{\"id\":1,\"method\":\"\\u006d\"}",
		"{\"id\":1,\"ok\":false,\"error\":{}}",
		"{\"type\":\"event\",\"event\":\"e\",\"to\":[\"s1\"]}",
		"{\"type\":\"chunk\",\"id\":\"c1\",\"data\":{\"delta\":\"\\ud83d\"}}",
		"{\"type\":\"event\",\"event\":\"e\",\"data\":\"\\ud83d\"}",
	};

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct avd_err err = { 0 };
		struct msg m;
		json_t *bad_id = NULL;
		char a[256];

		strcpy(a, msgs[i]);
		if (msg_decode(a, strlen(a), &m, &err, &bad_id) == 0) {
			ck_assert_msg(!m.fast, "fast path took %s", msgs[i]);
			msg_free(&m);
		}
		json_decref(bad_id);
		err_clear(&err);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("scan");
	TCase *tc = tcase_create("scan");

	tcase_add_loop_test(tc, test_accepts, 0, (int)(sizeof(accepted) / sizeof(accepted[0])));
	tcase_add_loop_test(tc, test_declines, 0, (int)(sizeof(declined) / sizeof(declined[0])));
	tcase_add_test(tc, test_members);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_mutations_agree_with_jansson);
	tcase_add_test(tc, test_fast_decode_matches_full);
	tcase_add_test(tc, test_fast_declines);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return th_run(s);
}
