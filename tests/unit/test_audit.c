/* test_audit.c: who a user is for the audit trail (audit.h): from its roster entry, from what the
 * store remembered, or from the directory's last names; labels, OU texts and paths relative to
 * roster_dir, over tables. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"
#define OU "aaaaaaaa-0000-4000-8000-00000000000a"

static Guid guid(const char *s) {
        Guid g;

        assert_int_equal(guid_parse(s, strlen(s), &g), 0);
        return g;
}

static void test_relative_path(void **state) {
        static const struct { const char *dir, *path, *want; } cases[] = {
                { "/srv/roster.d", "/srv/roster.d/a.yaml", "a.yaml" },
                { "/srv/roster.d/", "/srv/roster.d/a.yaml", "a.yaml" },
                { "/srv/roster.d", "/srv/roster.d//b.csv", "b.csv" },
                { "/srv/roster.d", "/srv/roster.dx/a.yaml", "/srv/roster.dx/a.yaml" },
                { "/srv/roster.d", "/tmp/export.csv", "/tmp/export.csv" },
                { "roster.d", "roster.d/a.yaml", "a.yaml" },
                { NULL, "/x/a.yaml", "/x/a.yaml" },
                { "", "a.yaml", "a.yaml" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_string_equal(audit_relative_path(cases[i].dir, cases[i].path), cases[i].want);
}

static void test_label_and_ou(void **state) {
        static const struct { const char *name, *upn, *want; } cases[] = {
                { "Jane", "jane@x", "Jane (jane@x)" }, { "Jane", "", "Jane" }, { "", "jane@x", "jane@x" },
                { "", "", "" }, { "same@x", "same@x", "same@x" },
        };
        OuAlias alias = { .name = (char *) "sales", .id = guid(OU) };
        Config c = { .ous = &alias, .n_ous = 1 };
        Guid ou = guid(OU), other = guid(U1), none = { 0 };
        char buf[128];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                AuditUser u = { 0 };

                snprintf(u.name, sizeof(u.name), "%s", cases[i].name);
                snprintf(u.upn, sizeof(u.upn), "%s", cases[i].upn);
                assert_string_equal(audit_user_label(&u, buf, sizeof(buf)), cases[i].want);
        }
        assert_string_equal(audit_ou_text(&c, &ou, buf, sizeof(buf)), "sales (" OU ")");
        assert_string_equal(audit_ou_text(&c, &other, buf, sizeof(buf)), U1);
        assert_string_equal(audit_ou_text(NULL, &none, buf, sizeof(buf)), "an unknown OU");
}

typedef struct Fixture {
        char dir[64];
        Store *s;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-audit-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(store_open(f->dir, false, &f->s), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        static const char *const files[] = { STORE_FILE_NAME, STORE_FILE_NAME "-wal", STORE_FILE_NAME "-shm" };
        Fixture *f = *state;
        char p[128];

        store_close(f->s);
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
                (void) unlink(p);
        }
        assert_int_equal(rmdir(f->dir), 0);
        free(f);
        return 0;
}

/* Listed: the entry says all, and recording it lets the store say the same later. */
static void test_describe_and_record(void **state) {
        Fixture *f = *state;
        static const char yaml[] = "users:\n"
                                   "  - {o365_id: " U1 ", ou: " OU ", name: Jane Doe, upn: jane@x}\n"
                                   "  - {o365_id: " U2 ", template: " U1 "}\n";
        Roster *r = NULL;
        Diag d = DIAG_INIT;
        AuditUser u, later;
        Guid u1 = guid(U1), u2 = guid(U2), ou = guid(OU);
        LogEvent ev = { 0 };

        assert_int_equal(roster_parse_buffer("/srv/roster.d/team.yaml", yaml, strlen(yaml), NULL, &r, &d), 0);
        audit_user_describe(f->s, r, roster_find(r, &u1), &u1, NULL, &u);
        assert_string_equal(u.name, "Jane Doe");
        assert_string_equal(u.upn, "jane@x");
        assert_string_equal(u.source, "/srv/roster.d/team.yaml");
        assert_false(u.directory);
        assert_true(guid_eq(&u.ou, &ou));
        assert_string_equal(audit_user_source(&u, "/srv/roster.d"), "team.yaml");
        audit_user_event(&u, &ev);
        assert_string_equal(ev.user_name, "Jane Doe");
        assert_string_equal(ev.roster_file, "/srv/roster.d/team.yaml");
        assert_null(ev.source);
        assert_ptr_equal(ev.ou, &u.ou);

        /* not recorded yet: the store knows nothing */
        audit_user_describe(f->s, NULL, NULL, &u1, &ou, &later);
        assert_string_equal(later.name, "");
        assert_string_equal(audit_user_source(&later, "/srv/roster.d"), "an unknown source");
        assert_int_equal(audit_user_record(f->s, r, roster_find(r, &u1)), 0);
        assert_int_equal(audit_user_record(f->s, r, roster_find(r, &u2)), 0);
        audit_user_describe(f->s, NULL, NULL, &u1, &ou, &later);
        assert_string_equal(later.name, "Jane Doe");
        assert_string_equal(later.upn, "jane@x");
        assert_string_equal(later.source, "/srv/roster.d/team.yaml");
        audit_user_describe(f->s, NULL, NULL, &u2, NULL, &later);
        assert_string_equal(later.name, "");            /* a copy with no name: none made up */
        assert_true(guid_is_null(&later.ou));
        roster_free(r);
        diag_clear(&d);
}

/* A member of an Entra group that left it before we ever recorded it: the directory's names. */
static void test_describe_from_directory(void **state) {
        Fixture *f = *state;
        Guid group = guid(U3), id = guid(U2);
        StoreSourceMember m = { .id = guid(U2), .name = "Agent", .upn = "agent@x", .enabled = true };
        AuditUser u;
        LogEvent ev = { 0 };

        assert_int_equal(store_source_save(f->s, &group, "Night Shift", &m, 1, 1), 0);
        audit_user_describe(f->s, NULL, NULL, &id, NULL, &u);
        assert_string_equal(u.name, "Agent");
        assert_string_equal(u.upn, "agent@x");
        assert_string_equal(u.source, "entra group \"Night Shift\"");
        assert_true(u.directory);
        assert_string_equal(audit_user_source(&u, "/srv/roster.d"), "entra group \"Night Shift\"");
        audit_user_event(&u, &ev);
        assert_string_equal(ev.source, "entra group \"Night Shift\"");
        assert_null(ev.roster_file);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_relative_path),
                cmocka_unit_test(test_label_and_ou),
                cmocka_unit_test_setup_teardown(test_describe_and_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_describe_from_directory, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
