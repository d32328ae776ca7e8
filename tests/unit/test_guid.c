/* test_guid: parsing every accepted spelling of a GUID, refusing each kind of malformed one, and
 * formatting back to the canonical lowercase form. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "guid.h"

#define LOWER "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b"

static const uint8_t lower_bytes[16] = {
        0x1f, 0x0e, 0x6b, 0x8a, 0x5c, 0x3d, 0x4e, 0x2f, 0x9a, 0x1b, 0x7c, 0x8d, 0x9e, 0x0f, 0x1a, 0x2b,
};

static int parse(const char *s, Guid *g) {
        return guid_parse(s, strlen(s), g);
}

static void test_lowercase(void **state) {
        Guid g;

        assert_int_equal(parse(LOWER, &g), 0);
        assert_memory_equal(g.b, lower_bytes, 16);
}

static void test_uppercase_and_braces_are_equal(void **state) {
        Guid a, b, c, d;

        assert_int_equal(parse(LOWER, &a), 0);
        assert_int_equal(parse("1F0E6B8A-5C3D-4E2F-9A1B-7C8D9E0F1A2B", &b), 0);
        assert_int_equal(parse("{1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b}", &c), 0);
        assert_int_equal(parse("{1F0e6B8a-5c3D-4E2f-9A1b-7C8d9E0f1A2b}", &d), 0);
        assert_true(guid_eq(&a, &b));
        assert_true(guid_eq(&a, &c));
        assert_true(guid_eq(&a, &d));
        assert_int_equal(guid_cmp(&a, &d), 0);
}

static void test_length_is_honoured(void **state) {
        /* s need not be NUL-terminated: only len bytes count. */
        const char buf[] = LOWER "ffff";
        Guid g;

        assert_int_equal(guid_parse(buf, 36, &g), 0);
        assert_memory_equal(g.b, lower_bytes, 16);
        assert_int_equal(guid_parse(buf, 40, &g), -EINVAL);
        assert_int_equal(guid_parse(buf, 35, &g), -EINVAL);
}

static void test_invalid_forms(void **state) {
        static const char *const bad[] = {
                "",
                "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2",           /* too short */
                "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2bb",         /* too long */
                "1f0e6b8a5c3d4e2f9a1b7c8d9e0f1a2b",              /* no dashes */
                "1f0e6b8a-5c3d-4e2f-9a1b_7c8d9e0f1a2b",          /* wrong separator */
                "1f0e6b8-a5c3d-4e2f-9a1b-7c8d9e0f1a2b",          /* dash misplaced */
                "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2g",          /* not hex */
                "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a-b",          /* dash in a hex place */
                " 1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2",          /* leading space */
                "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b ",         /* trailing space */
                "{1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b",         /* open brace only */
                "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b}",         /* close brace only */
                "(1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b)",        /* wrong brackets */
                "{{1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b}}",      /* double braces */
                "+1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2",          /* sign */
        };
        Guid g;

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                memset(&g, 0x55, sizeof g);
                if (parse(bad[i], &g) != -EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
                /* *ret is untouched on failure. */
                for (size_t k = 0; k < 16; k++)
                        assert_int_equal(g.b[k], 0x55);
        }
        assert_int_equal(guid_parse(NULL, 36, &g), -EINVAL);
}

static void test_embedded_nul(void **state) {
        char buf[37];
        Guid g;

        memcpy(buf, LOWER, 37);
        buf[5] = '\0';
        assert_int_equal(guid_parse(buf, 36, &g), -EINVAL);
}

static void test_format_round_trip(void **state) {
        char buf[GUID_STRING_MAX];
        Guid g, h;

        assert_int_equal(parse("{1F0E6B8A-5C3D-4E2F-9A1B-7C8D9E0F1A2B}", &g), 0);
        assert_ptr_equal(guid_format(&g, buf), buf);
        assert_string_equal(buf, LOWER);
        assert_int_equal(strlen(buf), 36);
        assert_int_equal(parse(buf, &h), 0);
        assert_true(guid_eq(&g, &h));

        /* Every byte value survives the round trip. */
        for (unsigned v = 0; v < 256; v++) {
                memset(g.b, (int) v, 16);
                guid_format(&g, buf);
                assert_int_equal(parse(buf, &h), 0);
                assert_memory_equal(g.b, h.b, 16);
        }
}

static void test_order_matches_text(void **state) {
        /* Byte order is the order of the canonical text, so sorted rosters read sorted. */
        Guid a, b;

        assert_int_equal(parse("0fffffff-ffff-ffff-ffff-ffffffffffff", &a), 0);
        assert_int_equal(parse("10000000-0000-0000-0000-000000000000", &b), 0);
        assert_true(guid_cmp(&a, &b) < 0);
        assert_true(guid_cmp(&b, &a) > 0);
        assert_int_equal(parse("00000000-0000-0000-0000-000000000001", &a), 0);
        assert_int_equal(parse("00000000-0000-0000-0000-000000000002", &b), 0);
        assert_true(guid_cmp(&a, &b) < 0);
}

static void test_null(void **state) {
        Guid g;

        assert_int_equal(parse("00000000-0000-0000-0000-000000000000", &g), 0);
        assert_true(guid_is_null(&g));
        assert_int_equal(parse(LOWER, &g), 0);
        assert_false(guid_is_null(&g));
        assert_int_equal(parse("00000000-0000-0000-0000-000000000100", &g), 0);
        assert_false(guid_is_null(&g));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lowercase),
                cmocka_unit_test(test_uppercase_and_braces_are_equal),
                cmocka_unit_test(test_length_is_honoured),
                cmocka_unit_test(test_invalid_forms),
                cmocka_unit_test(test_embedded_nul),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_order_matches_text),
                cmocka_unit_test(test_null),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
