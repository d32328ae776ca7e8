/* test_roster: roster files (nimbus-sync.yaml(5), ROSTER FILES) in YAML and CSV: what each format
 * accepts, the rules for entries, every error with its line, the union of several files with its
 * duplicates, which files are read (and which names are errors), encodings, the folder's
 * fingerprint, and the limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "roster.h"
#include "roster_internal.h"
#include "util.h"

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"
#define U4 "44444444-4444-4444-8444-444444444444"
#define OU_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define OU_B "bbbbbbbb-0000-4000-8000-00000000000b"
#define ZERO "00000000-0000-0000-0000-000000000000"

typedef struct Fixture {
        char dir[512];
        Config *config;
        Diag diag;
} Fixture;

static int setup(void **state) {
        static const char yaml[] =
                "tenant_id: 9fce70af-a632-49ca-bc0d-53db5a21c5b3\n"
                "client_id: 0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d\n"
                "client_secret_file: /etc/nimbus-sync/secret\n"
                "cluster: ch-01\n"
                "organization_units:\n"
                "  support: " OU_A "\n"
                "  sales: " OU_B "\n";
        Fixture *f = calloc(1, sizeof(Fixture));
        Diag d = DIAG_INIT;

        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "%s/test_roster.XXXXXX", getenv("TMPDIR") ?: P_tmpdir);
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(config_parse("config.yaml", yaml, strlen(yaml), &f->config, &d), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[1024];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        config_free(f->config);
        diag_clear(&f->diag);
        free(f);
        return 0;
}

static void write_file(Fixture *f, const char *name, const char *text) {
        char path[1024];
        int fd;

        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static Guid guid(const char *s) {
        Guid g;

        assert_int_equal(guid_parse(s, strlen(s), &g), 0);
        return g;
}

static void print_diag(const Diag *d) {
        for (size_t i = 0; i < d->n; i++) {
                char *s = NULL;

                assert_int_equal(diag_entry_format(&d->entries[i], &s), 0);
                print_error("  got: %s\n", s);
                free(s);
        }
}

/* file is the name in the fixture's folder; the diagnostic must read exactly `rest` after
 * "DIR/file". */
static bool diag_has(Fixture *f, const char *file, const char *rest) {
        char expect[2048];

        if (file)
                snprintf(expect, sizeof expect, "%s/%s%s", f->dir, file, rest);
        else
                snprintf(expect, sizeof expect, "%s", rest);
        for (size_t i = 0; i < f->diag.n; i++) {
                char *s = NULL;
                bool same;

                assert_int_equal(diag_entry_format(&f->diag.entries[i], &s), 0);
                same = streq(s, expect);
                free(s);
                if (same)
                        return true;
        }
        print_error("expected: %s\n", expect);
        print_diag(&f->diag);
        return false;
}

static Roster *load_ok(Fixture *f) {
        Roster *r = NULL;
        int k = roster_load_dir(f->dir, f->config, &r, NULL, &f->diag);

        if (k != 0 || f->diag.n_errors != 0)
                print_diag(&f->diag);
        assert_int_equal(k, 0);
        assert_int_equal(f->diag.n_errors, 0);
        assert_non_null(r);
        return r;
}

/* A folder holding just this file: it loads, with n entries. */
static Roster *load_file_ok(Fixture *f, const char *name, const char *text, size_t n) {
        Roster *r;

        write_file(f, name, text);
        r = load_ok(f);
        assert_int_equal(r->n, n);
        return r;
}

/* The folder must be rejected, leaving *ret untouched. */
static void load_fails(Fixture *f) {
        Roster *sentinel = (Roster *) f, *r = sentinel;

        assert_int_equal(roster_load_dir(f->dir, f->config, &r, NULL, &f->diag), -EINVAL);
        assert_ptr_equal(r, sentinel);
        assert_true(f->diag.n_errors > 0);
}

/* One bad file on its own in the folder: the load fails and names this diagnostic. */
static void expect_file_error(Fixture *f, const char *ext, size_t i, const char *text, const char *diag) {
        char name[32], path[1024];

        diag_clear(&f->diag);
        snprintf(name, sizeof name, "case%02zu.%s", i, ext);
        write_file(f, name, text);
        load_fails(f);
        if (!diag_has(f, name, diag))
                fail_msg("case %zu", i);
        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        assert_int_equal(unlink(path), 0);
}

static const RosterEntry *find(const Roster *r, const char *id) {
        Guid g = guid(id);

        return roster_find(r, &g);
}

static void assert_entry(const Roster *r, const char *id, TargetKind kind, const char *target,
                         const char *name, unsigned line) {
        const RosterEntry *e = find(r, id);
        Guid t = guid(target);

        assert_non_null(e);
        assert_int_equal(e->kind, kind);
        assert_true(guid_eq(&e->target, &t));
        assert_string_equal(roster_entry_name(r, e), name);
        assert_int_equal(e->line, line);
}

static void assert_sorted(const Roster *r) {
        for (size_t i = 1; i < r->n; i++)
                assert_true(guid_cmp(&r->entries[i - 1].id, &r->entries[i].id) < 0);
}

/* ---- YAML -------------------------------------------------------------------------------- */

static void test_yaml_basic(void **state) {
        Fixture *f = *state;
        Roster *r;

        r = load_file_ok(f, "team.yaml",
                   "# support team\n"
                   "users:\n"
                   "  - o365_id: " U3 "\n"
                   "    ou: " OU_A "\n"
                   "    name: Jane Doe\n"
                   "    comment: joined 2024\n"
                   "  - o365_id: " U1 "\n"
                   "    template: " U3 "\n"
                   "    upn: john@example.com\n"
                   "  - {o365_id: " U2 ", ou: " OU_B ", name: Flow Style, upn: flow@example.com}\n", 3);
        assert_sorted(r);
        assert_entry(r, U3, TARGET_OU, OU_A, "Jane Doe", 3);
        assert_entry(r, U1, TARGET_TEMPLATE, U3, "john@example.com", 7);
        assert_entry(r, U2, TARGET_OU, OU_B, "Flow Style", 10);
        assert_int_equal(r->n_files, 1);
        assert_string_equal(roster_entry_file(r, find(r, U1)), r->files[0]);
        assert_non_null(strstr(r->files[0], "/team.yaml"));
        assert_null(find(r, U4));
        assert_int_equal(f->diag.n, 0);
        roster_free(r);
}

static void test_yaml_default_ou(void **state) {
        Fixture *f = *state;
        Roster *r;

        /* The default may come after the users it applies to. */
        write_file(f, "a.yaml",
                   "users:\n"
                   "  - o365_id: " U1 "\n"
                   "  - o365_id: " U2 "\n"
                   "    template: " U1 "\n"
                   "  - o365_id: " U3 "\n"
                   "    ou: sales\n"
                   "ou: support\n");
        write_file(f, "b.yml", "ou: " OU_B "\nusers:\n  - o365_id: " U4 "\n");
        r = load_ok(f);
        assert_int_equal(r->n, 4);
        assert_entry(r, U1, TARGET_OU, OU_A, "", 2);
        assert_entry(r, U2, TARGET_TEMPLATE, U1, "", 3);
        assert_entry(r, U3, TARGET_OU, OU_B, "", 5);
        assert_entry(r, U4, TARGET_OU, OU_B, "", 3);
        assert_int_equal(r->n_files, 2);
        roster_free(r);
}

static void test_yaml_explicitly_empty(void **state) {
        Fixture *f = *state;
        Roster *r;

        write_file(f, "a.yaml", "users: []\n");
        write_file(f, "b.yaml", "# nobody yet\nou: support\nusers: []\n");
        write_file(f, "c.csv", "\xef\xbb\xbfid;ou\r\n");
        r = load_ok(f);
        assert_int_equal(r->n, 0);
        assert_int_equal(r->n_files, 3);
        assert_null(find(r, U1));
        roster_free(r);
}

/* A file that lists nobody by accident (truncated, or never written) is an error, in both
 * formats, with the same advice. */
static void test_empty_files_are_errors(void **state) {
        static const struct {
                const char *name, *text, *diag;
        } cases[] = {
                { "a.yaml", "", ":1:1: error: empty file: a roster that lists nobody must say so with `users: []`" },
                { "b.yml", " \n\r\n\t\n", ":1:1: error: empty file: a roster that lists nobody must say so with "
                  "`users: []`" },
                { "c.yaml", "\xef\xbb\xbf", ":1:1: error: empty file: a roster that lists nobody must say so with "
                  "`users: []`" },
                { "d.yaml", "# nothing yet\n", ":1:1: error: no YAML document, only comments: a roster that lists "
                  "nobody must say so with `users: []`" },
                { "e.yaml", "~\n", ":1:1: error: the document is empty: a roster that lists nobody must say so "
                  "with `users: []`" },
                { "f.yaml", "--- null\n", ":1:5: error: the document is empty: a roster that lists nobody must "
                  "say so with `users: []`" },
                { "g.yaml", "# x\n---\n", ":3:1: error: the document is empty: a roster that lists nobody must "
                  "say so with `users: []`" },
                { "h.yaml", "ou: support\nusers:\n", ":2:1: error: users has no value: a roster that lists "
                  "nobody must say so with `users: []`" },
                { "i.yaml", "users: ~\n", ":1:1: error: users has no value: a roster that lists nobody must "
                  "say so with `users: []`" },
                { "j.yaml", "ou: support\n", ":1:1: error: no users: a roster that lists nobody must say so with "
                  "`users: []`" },
                { "k.yaml", "{}\n", ":1:1: error: no users: a roster that lists nobody must say so with "
                  "`users: []`" },
                { "l.csv", "", ":1:1: error: empty file: a roster that lists nobody must say so with its header "
                  "row alone" },
                { "m.csv", "\xef\xbb\xbf\r\n\r\n", ":1:1: error: empty file: a roster that lists nobody must "
                  "say so with its header row alone" },
                { "n.csv", "sep=;\r\n", ":2: error: no header row: a roster that lists nobody must say so "
                  "with its header row alone" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Fixture *f = *state;
                char path[1024];

                diag_clear(&f->diag);
                write_file(f, cases[i].name, cases[i].text);
                load_fails(f);
                if (!diag_has(f, cases[i].name, cases[i].diag))
                        fail_msg("case %zu", i);
                assert_int_equal(f->diag.n_errors, 1);
                snprintf(path, sizeof path, "%s/%s", f->dir, cases[i].name);
                assert_int_equal(unlink(path), 0);
        }
}

static void test_guid_spellings_are_equal(void **state) {
        Fixture *f = *state;
        Roster *r;

        write_file(f, "a.yaml", "users:\n  - o365_id: \"{11111111-1111-4111-8111-111111111111}\"\n"
                   "    ou: \"{AAAAAAAA-0000-4000-8000-00000000000A}\"\n");
        write_file(f, "b.csv", "id,ou\n" U1 "," OU_A "\n");
        r = load_ok(f);
        assert_int_equal(r->n, 1);
        assert_entry(r, U1, TARGET_OU, OU_A, "", 2);
        /* The same user and target: only a warning, pointing at the first listing. */
        assert_int_equal(f->diag.n_warnings, 1);
        {
                char rest[1024];

                snprintf(rest, sizeof rest, ":2: warning: o365_id " U1 " listed twice (also at %s/a.yaml:2)", f->dir);
                assert_true(diag_has(f, "b.csv", rest));
        }
        roster_free(r);
}

static void test_yaml_errors(void **state) {
        static const struct {
                const char *text;
                const char *diag;
        } cases[] = {
                { "users:\n  - o365_id: nope\n    ou: " OU_A "\n", ":2:14: error: invalid o365_id \"nope\"" },
                { "users:\n  - o365_id: " U1 "\n    templte: " U2 "\n",
                  ":3:5: error: unknown key \"templte\" (expected o365_id, ou, template, name, upn or comment)" },
                { "users:\n  - o365_id: " U1 "\n    ou: " OU_A "\n    template: " U2 "\n",
                  ":2:5: error: entry has both ou and template" },
                { "users:\n  - o365_id: " U1 "\n",
                  ":2: error: entry needs ou or template (and the file sets no default ou)" },
                { "users:\n  - ou: " OU_A "\n    name: x\n", ":2:5: error: entry has no o365_id" },
                { "users:\n  - o365_id: " U1 "\n    template: \"{" U1 "}\"\n",
                  ":2:5: error: template is the entry's own o365_id" },
                { "users:\n  - o365_id: " U1 "\n    ou: marketing\n",
                  ":3:9: error: unknown organization unit \"marketing\" (neither a GUID nor a name from "
                  "organization_units)" },
                { "users:\n  - o365_id: " U1 "\n    template: jane\n",
                  ":3:15: error: invalid template \"jane\" (must be an O365 ID)" },
                { "users:\n  - o365_id: " U1 "\n    ou: " OU_A "\n    ou: " OU_B "\n",
                  ":4:5: error: duplicate key \"ou\"" },
                { "users:\n  - o365_id: [" U1 "]\n    ou: " OU_A "\n",
                  ":2:14: error: o365_id must be a single value, not a list or mapping" },
                { "users:\n  - o365_id: &x " U1 "\n    ou: " OU_A "\n  - o365_id: *x\n    ou: " OU_A "\n",
                  ":4:14: error: o365_id: YAML aliases are not supported in rosters" },
                { "users:\n  - " U1 "\n", ":2:5: error: each entry of users must be a mapping (o365_id: ..., "
                  "ou: ...)" },
                { "users:\n  o365_id: " U1 "\n", ":2:3: error: users must be a list of entries" },
                { "user:\n  - o365_id: " U1 "\n", ":1:1: error: unknown key \"user\" (expected ou or users)" },
                { "ou: nowhere\nusers: []\n", ":1:5: error: unknown organization unit \"nowhere\" (neither a "
                  "GUID nor a name from organization_units)" },
                { "ou: support\nou: sales\n", ":2:1: error: duplicate key \"ou\"" },
                { "- o365_id: " U1 "\n", ":1:1: error: a roster must be a mapping with users: (and optionally ou:)" },
                { "users:\n  - o365_id: " ZERO "\n    ou: " OU_A "\n",
                  ":2:14: error: o365_id is the all-zero GUID: a placeholder, not a user" },
                { "users:\n  - o365_id: " U1 "\n    template: \"{" ZERO "}\"\n",
                  ":3:15: error: template is the all-zero GUID: a placeholder, not a user" },
                { "ou: " ZERO "\nusers:\n  - o365_id: " U1 "\n",
                  ":1:5: error: ou is the all-zero GUID: a placeholder, not an organization unit" },
                { "users: []\n---\nusers: []\n", ":2:1: error: a roster file holds one YAML document" },
                { "users:\n  - o365_id: " U1 "\n    ou: " OU_A "\n   name: x\n",
                  ":4:4: error: YAML syntax: did not find expected '-' indicator (while parsing a block "
                  "collection that starts at line 2)" },
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                expect_file_error(*state, "yaml", i, cases[i].text, cases[i].diag);
}

static void test_yaml_several_errors_reported(void **state) {
        Fixture *f = *state;

        write_file(f, "a.yaml",
                   "users:\n"
                   "  - o365_id: bad-1\n"
                   "    ou: " OU_A "\n"
                   "  - o365_id: " U1 "\n"
                   "    ou: " OU_A "\n"
                   "  - o365_id: bad-2\n"
                   "    ou: " OU_A "\n"
                   "  - o365_id: " U2 "\n");
        load_fails(f);
        assert_int_equal(f->diag.n_errors, 3);
        assert_true(diag_has(f, "a.yaml", ":2:14: error: invalid o365_id \"bad-1\""));
        assert_true(diag_has(f, "a.yaml", ":6:14: error: invalid o365_id \"bad-2\""));
        assert_true(diag_has(f, "a.yaml", ":8: error: entry needs ou or template (and the file sets no default ou)"));
}

/* ---- CSV --------------------------------------------------------------------------------- */

static void test_csv_basic(void **state) {
        Fixture *f = *state;
        Roster *r;

        r = load_file_ok(f, "export.csv",
                   "o365_id,ou,template,name\n"
                   U1 "," OU_A ",,Jane Doe\n"
                   U2 ",," U1 ",John\n"
                   U3 ",support,,\n", 3);
        assert_sorted(r);
        assert_entry(r, U1, TARGET_OU, OU_A, "Jane Doe", 2);
        assert_entry(r, U2, TARGET_TEMPLATE, U1, "John", 3);
        assert_entry(r, U3, TARGET_OU, OU_A, "", 4);
        roster_free(r);
}

static void test_csv_bom_semicolon_crlf(void **state) {
        Fixture *f = *state;
        Roster *r;

        r = load_file_ok(f, "excel.csv",
                   "\xef\xbb\xbf" "ObjectId;OrganizationUnitId;Display Name;Department\r\n"
                   U1 ";" OU_B ";M\xc3\xbcller, Anna;Sales, EMEA\r\n"
                   "\r\n"
                   U2 ";sales;Bob;\r\n", 2);
        assert_entry(r, U1, TARGET_OU, OU_B, "M\xc3\xbcller, Anna", 2);
        assert_entry(r, U2, TARGET_OU, OU_B, "Bob", 4);
        roster_free(r);
}

static void test_csv_tab(void **state) {
        Fixture *f = *state;
        Roster *r;

        /* Empty cells between tabs must stay cells. */
        r = load_file_ok(f, "tab.csv",
                   "Template_O365_Id\tObject ID\tOU\tDisplayName\n"
                   "\t" U1 "\t" OU_A "\tA, B\n"
                   U1 "\t" U2 "\t\t\n", 2);
        assert_entry(r, U1, TARGET_OU, OU_A, "A, B", 2);
        assert_entry(r, U2, TARGET_TEMPLATE, U1, "", 3);
        roster_free(r);
}

static void test_csv_quoting_and_lines(void **state) {
        Fixture *f = *state;
        Roster *r;

        r = load_file_ok(f, "quoted.csv",
                   "\"userPrincipalName\",\"id\",\"displayName\",\"ou\"\n"
                   "\"a@x\",\"" U1 "\",\"Doe, Jane\",\"" OU_A "\"\n"
                   "\"b@x\",\"" U2 "\",\"two\nline \"\"name\"\"\",\"" OU_A "\"\n"
                   "\n"
                   ",,,\n"
                   "\"c@x\",  " U3 "  ,plain,  sales  \n"
                   "\"d@x\"," U4 ",\"last, no newline\"," OU_A, 4);
        assert_entry(r, U1, TARGET_OU, OU_A, "Doe, Jane", 2);
        /* Newlines in names become spaces; the record still counts from its first line. */
        assert_entry(r, U2, TARGET_OU, OU_A, "two line \"name\"", 3);
        assert_entry(r, U3, TARGET_OU, OU_B, "plain", 7);
        assert_entry(r, U4, TARGET_OU, OU_A, "last, no newline", 8);
        roster_free(r);
}

static void test_csv_header_aliases(void **state) {
        static const char *const id_names[] = { "o365_id", "O365ID", "objectid", "Object Id", " ID " };
        static const char *const ou_names[] = { "ou", "OrganizationUnitId", "ORGANIZATION_UNIT_ID" };
        static const char *const tpl_names[] = { "template", "SourceO365Id", "template_o365_id" };
        static const char *const name_names[] = { "name", "displayName", "DISPLAY NAME" };

        for (size_t i = 0; i < 5; i++) {
                Fixture *f = *state;
                char text[512];
                Roster *r;

                snprintf(text, sizeof text, "mail,%s,%s,%s,%s,extra\n"
                         "x@y," U1 ",," U2 ",Name %zu,zzz\n"
                         "x@y," U2 "," OU_A ",,,\n",
                         id_names[i], ou_names[i % 3], tpl_names[i % 3], name_names[i % 3], i);
                write_file(f, "h.csv", text);
                r = load_ok(f);
                assert_int_equal(r->n, 2);
                snprintf(text, sizeof text, "Name %zu", i);
                assert_entry(r, U1, TARGET_TEMPLATE, U2, text, 2);
                assert_entry(r, U2, TARGET_OU, OU_A, "", 3);
                roster_free(r);
        }
}

static void test_csv_errors(void **state) {
        static const struct {
                const char *text;
                const char *diag;
        } cases[] = {
                { "upn,ou\nx," OU_A "\n", ":1: error: the header has no O365 ID column (one of: o365_id, o365id, "
                  "objectid, object id, id)" },
                { "id,name\n" U1 ",x\n", ":1: error: the header has neither an ou column (ou, organizationunitid, "
                  "organization_unit_id) nor a template column (template, sourceo365id, template_o365_id), and no "
                  "roster_defaults entry matches the file name" },
                { "id,objectid,ou\n", ":1:2: error: columns 1 and 2 both give the O365 ID" },
                { "\n\nname;id\n" U1 ";x\n", ":3: error: the header has neither an ou column (ou, "
                  "organizationunitid, organization_unit_id) nor a template column (template, sourceo365id, "
                  "template_o365_id), and no roster_defaults entry matches the file name" },
                { "id,ou\n" U1 "," OU_A "\n" "bad-id," OU_A "\n", ":3:1: error: invalid o365_id \"bad-id\"" },
                { "name,id,ou\nx," U1 ",nowhere\n", ":2:3: error: unknown organization unit \"nowhere\" (neither a "
                  "GUID nor a name from organization_units)" },
                { "id,ou,template\n" U1 "," OU_A "," U2 "\n", ":2: error: entry has both ou and template" },
                { "id,ou,template\n" U1 ",,\n", ":2: error: entry needs ou or template" },
                { "id,ou\n," OU_A "\n", ":2: error: entry has no o365_id" },
                { "id,template\n" U1 "," U1 "\n", ":2: error: template is the entry's own o365_id" },
                { "id,ou\n" U1 "," ZERO "\n", ":2:2: error: ou is the all-zero GUID: a placeholder, not an "
                  "organization unit" },
                { "sep=|\nid|ou\n", ":1:5: error: the sep= line must name one delimiter: , or ; or a tab" },
                { "sep=;\nid;ou\n" U1 ";x,y\n", ":3:2: error: unknown organization unit \"x,y\" (neither a GUID "
                  "nor a name from organization_units)" },
                { "id,ou,name\n" U1 "," OU_A ",\"never closed\n" U2 "," OU_A ",x\n",
                  ":2: error: unterminated quoted field (the file may be cut short)" },
                { "id,ou\n" U1 "," OU_A "\n" U2 ",x\"y\"\n",
                  ":3:39: error: malformed CSV: a quote inside an unquoted field, or text after a closing quote" },
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                expect_file_error(*state, "csv", i, cases[i].text, cases[i].diag);
}

static void test_csv_sep_line(void **state) {
        static const char *const texts[] = {
                "sep=;\nid;ou;name\n" U1 ";" OU_A ";Doe, Jane\n",
                "\xef\xbb\xbfSEP=;\r\nid;ou;name\r\n" U1 ";" OU_A ";Doe, Jane\r\n",
                "sep=\t\nid\tou\tname\n" U1 "\t" OU_A "\tDoe, Jane\n",
                "sep=\\t\nid\tou\tname\n" U1 "\t" OU_A "\tDoe, Jane\n",
                "sep=,\nid,ou,name,a;b;c;d;e\n" U1 "," OU_A ",\"Doe, Jane\",x\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                Fixture *f = *state;
                Roster *r;

                write_file(f, "excel.csv", texts[i]);
                r = load_ok(f);
                assert_int_equal(r->n, 1);
                assert_entry(r, U1, TARGET_OU, OU_A, "Doe, Jane", 3);
                roster_free(r);
        }
}

/* Text that is not UTF-8 is named for what it looks like, at its first bad byte. */
static void test_encodings(void **state) {
        static const struct {
                const char *name;
                const char *text;
                size_t len;
                const char *diag;
        } cases[] = {
#define C(name, text, diag) { name, text, sizeof text - 1, diag }
                C("a.csv", "id,ou,name\n" U1 "," OU_A ",M\xfcller\n", "a.csv:2:76: error: byte 0xFC is not UTF-8: "
                  "the file looks like Windows-1252 or Latin-1 (ISO-8859-1) text; save it as UTF-8"),
                C("b.csv", "name,id\n\x93quoted\x94\n", "b.csv:2:1: error: byte 0x93 is not UTF-8: the file looks "
                  "like Windows-1252 text; save it as UTF-8"),
                C("c.yaml", "\xff\xfeu\0s\0", "c.yaml:1:1: error: the file is UTF-16 (little-endian) text, not "
                  "UTF-8: save it as UTF-8"),
                C("d.yaml", "\xfe\xff\0u\0s", "d.yaml:1:1: error: the file is UTF-16 (big-endian) text, not "
                  "UTF-8: save it as UTF-8"),
                C("e.csv", "i\0d\0,\0o\0u\0\n\0", "e.csv:1:2: error: the file is UTF-16 (little-endian) text, "
                  "not UTF-8: save it as UTF-8"),
                C("f.csv", "\0i\0d\0,\0o\0u", "f.csv:1:1: error: the file is UTF-16 (big-endian) text, not UTF-8: "
                  "save it as UTF-8"),
                C("g.yaml", "users: []\n#\0 comment with a NUL byte in it\n", "g.yaml:2:2: error: a NUL byte: the "
                  "file is binary data, not UTF-8 text"),
                C("h.yaml", "\xef\xbb\xbfusers: [] # \xc3\xa9t\xc3\xa9 \xc0\xaf\n", "h.yaml:1:17: error: byte 0xC0 "
                  "is not UTF-8: the file looks like Windows-1252 or Latin-1 (ISO-8859-1) text; save it as UTF-8"),
                C("i.yaml", "users: [] # \xed\xa0\x80\n", "i.yaml:1:13: error: byte 0xED is not UTF-8: the file "
                  "looks like Windows-1252 or Latin-1 (ISO-8859-1) text; save it as UTF-8"),
                C("j.yaml", "users: [] # \xf0\x9f\x98\n", "j.yaml:1:13: error: byte 0xF0 is not UTF-8: the file "
                  "looks like Windows-1252 or Latin-1 (ISO-8859-1) text; save it as UTF-8"),
#undef C
        };
        Fixture *f = *state;
        const char ok[] = "users:\n  - o365_id: " U1 "\n    ou: support\n    name: \xf0\x9f\x98\x80 \xc3\xa9\n";
        Roster *r = NULL;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                diag_clear(&f->diag);
                assert_int_equal(roster_parse_buffer(cases[i].name, cases[i].text, cases[i].len, f->config, &r,
                                                     &f->diag), -EINVAL);
                assert_null(r);
                if (!diag_has(f, NULL, cases[i].diag))
                        fail_msg("case %zu", i);
                assert_int_equal(f->diag.n_errors, 1);
        }
        diag_clear(&f->diag);
        assert_int_equal(roster_parse_buffer("ok.yaml", ok, strlen(ok), f->config, &r, &f->diag), 0);
        assert_string_equal(roster_entry_name(r, find(r, U1)), "\xf0\x9f\x98\x80 \xc3\xa9");
        roster_free(r);
}

/* ---- the union of files ------------------------------------------------------------------ */

static void test_conflict_across_files(void **state) {
        Fixture *f = *state;

        write_file(f, "a.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n  - o365_id: " U2 "\n    ou: sales\n");
        write_file(f, "b.csv", "id,ou\n" U2 ",support\n");
        load_fails(f);
        assert_int_equal(f->diag.n_errors, 1);
        {
                char rest[1024];

                snprintf(rest, sizeof rest, ":2: error: o365_id " U2 " listed with a different ou than at %s/a.yaml:4",
                         f->dir);
                assert_true(diag_has(f, "b.csv", rest));
        }

        /* A different kind of target is a conflict too. */
        diag_clear(&f->diag);
        write_file(f, "b.csv", "id,template\n" U2 "," U1 "\n");
        load_fails(f);
        assert_int_equal(f->diag.n_errors, 1);
        assert_non_null(strstr(f->diag.entries[0].msg, "listed with a different target than at"));

        /* The same target twice is only a warning, and the roster stands. */
        diag_clear(&f->diag);
        write_file(f, "b.csv", "id,ou\n" U2 "," OU_B "\n");
        {
                Roster *r = load_ok(f);
                char rest[1024];

                assert_int_equal(r->n, 2);
                assert_int_equal(f->diag.n_warnings, 1);
                snprintf(rest, sizeof rest, ":2: warning: o365_id " U2 " listed twice (also at %s/a.yaml:4)", f->dir);
                assert_true(diag_has(f, "b.csv", rest));
                /* The first listing is the one kept. */
                assert_non_null(strstr(roster_entry_file(r, find(r, U2)), "/a.yaml"));
                roster_free(r);
        }
}

static void test_one_broken_file_rejects_all(void **state) {
        Fixture *f = *state;

        write_file(f, "a-good.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        write_file(f, "b-broken.csv", "id,ou\n" U2 ",support\n" U3 "\n");
        write_file(f, "c-good.csv", "id,ou\n" U4 ",sales\n");
        load_fails(f);
        assert_int_equal(f->diag.n_errors, 1);
        assert_true(diag_has(f, "b-broken.csv", ":3: error: entry needs ou or template"));
}

static void test_ignored_names(void **state) {
        static const struct {
                const char *name;
                bool candidate;
        } names[] = {
                { "a.yaml", true },       { "a.yml", true },       { "a.csv", true },
                { "x.yaml.tmp", false },  { "x.yaml~", false },    { ".x.yaml.swp", false },
                { ".hidden.yaml", false }, { "notes.txt", false },  { "yaml", false },
                { ".yaml", false },       { "a.YAML", false },     { "a.csv.bak", false },
        };
        Fixture *f = *state;
        char path[1024];
        Roster *r;

        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (roster_is_candidate_name(names[i].name) != names[i].candidate)
                        fail_msg("%s", names[i].name);

        /* Broken content in every ignored name: none of it may be read. */
        write_file(f, "x.yaml.tmp", "broken: [");
        write_file(f, "x.yaml~", "broken: [");
        write_file(f, ".x.yaml.swp", "broken: [");
        write_file(f, "notes.txt", "broken: [");
        write_file(f, "real.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        /* A symlink to a regular file is a regular file for us. */
        snprintf(path, sizeof path, "%s/link.csv", f->dir);
        write_file(f, "target.txt", "id,ou\n" U2 ",sales\n");
        assert_int_equal(symlink("target.txt", path), 0);

        r = load_ok(f);
        assert_int_equal(r->n_files, 2);
        assert_non_null(strstr(r->files[0], "/link.csv"));
        assert_non_null(strstr(r->files[1], "/real.yaml"));
        assert_int_equal(r->n, 2);
        roster_free(r);
}

/* A roster name that gives no content is an error, never an empty file: a dangling symlink (a
 * share that is not mounted), a FIFO (never opened: that would block), a directory, a loop. */
static void test_names_without_content_are_errors(void **state) {
        Fixture *f = *state;
        char path[1024], fifo[1024], link[1024];
        char *paths[2] = { fifo, link };
        Roster *r = NULL;

        write_file(f, "real.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        snprintf(path, sizeof path, "%s/dir.csv", f->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(fifo, sizeof fifo, "%s/pipe.yaml", f->dir);
        assert_int_equal(mkfifo(fifo, 0644), 0);
        snprintf(link, sizeof link, "%s/share.csv", f->dir);
        assert_int_equal(symlink("/nonexistent/mnt/export.csv", link), 0);
        snprintf(path, sizeof path, "%s/loop.yaml", f->dir);
        assert_int_equal(symlink("loop.yaml", path), 0);

        load_fails(f);
        assert_int_equal(f->diag.n_errors, 4);
        assert_true(diag_has(f, "dir.csv", ":1:1: error: not a regular file but a directory"));
        assert_true(diag_has(f, "pipe.yaml", ":1:1: error: not a regular file but a FIFO"));
        assert_true(diag_has(f, "share.csv", ":1:1: error: dangling symbolic link: its target "
                             "/nonexistent/mnt/export.csv does not exist (a share that is not mounted?)"));
        assert_true(diag_has(f, "loop.yaml", ":1:1: error: cannot read: Too many levels of symbolic links"));

        /* Named on the command line, the same. */
        diag_clear(&f->diag);
        assert_int_equal(roster_load_files(paths, 2, f->config, &r, &f->diag), -EINVAL);
        assert_null(r);
        assert_int_equal(f->diag.n_errors, 2);
        assert_true(diag_has(f, "pipe.yaml", ":1:1: error: not a regular file but a FIFO"));
        assert_true(diag_has(f, "share.csv", ":1:1: error: dangling symbolic link: its target "
                             "/nonexistent/mnt/export.csv does not exist (a share that is not mounted?)"));
}

static uint64_t fingerprint(Fixture *f) {
        uint64_t fp = 0;

        assert_int_equal(roster_fingerprint(f->dir, &fp), 0);
        return fp;
}

static void test_fingerprint(void **state) {
        Fixture *f = *state;
        char from[1024], to[1024], sub[1024], target[1024];
        uint64_t fp, seen = 0;
        Roster *r = NULL;

        write_file(f, "a.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        fp = fingerprint(f);
        assert_true(fingerprint(f) == fp);
        /* A read tells the fingerprint of what it read. */
        assert_int_equal(roster_load_dir(f->dir, f->config, &r, &seen, &f->diag), 0);
        assert_true(seen == fp);
        r = roster_free(r);

        /* Names that are not roster files do not count. */
        write_file(f, ".a.yaml.swp", "x");
        write_file(f, "b.yaml.tmp", "x");
        assert_true(fingerprint(f) == fp);

        /* A rename changes it, even to the same content under another name. */
        snprintf(from, sizeof from, "%s/a.yaml", f->dir);
        snprintf(to, sizeof to, "%s/c.yaml", f->dir);
        assert_int_equal(rename(from, to), 0);
        assert_true(fingerprint(f) != fp);
        fp = fingerprint(f);

        /* A symlink whose target goes away changes it, with no event in the folder itself. */
        snprintf(sub, sizeof sub, "%s/mnt", f->dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        write_file(f, "mnt/export.csv", "id,ou\n" U2 ",sales\n");
        snprintf(target, sizeof target, "%s/mnt/export.csv", f->dir);
        snprintf(from, sizeof from, "%s/share.csv", f->dir);
        assert_int_equal(symlink(target, from), 0);
        assert_true(fingerprint(f) != fp);
        fp = fingerprint(f);
        assert_int_equal(unlink(target), 0);
        assert_true(fingerprint(f) != fp);

        /* A rejected roster still tells what it saw: a watcher need not read it again. */
        fp = fingerprint(f);
        seen = 0;
        assert_int_equal(roster_load_dir(f->dir, f->config, &r, &seen, &f->diag), -EINVAL);
        assert_true(seen == fp);

        snprintf(sub, sizeof sub, "%s/missing", f->dir);
        assert_int_equal(roster_fingerprint(sub, &fp), -ENOENT);
        assert_int_equal(roster_load_dir(sub, f->config, &r, &seen, &f->diag), -ENOENT);
        assert_true(seen == 0);
}

static void test_folder_errors(void **state) {
        Fixture *f = *state;
        char path[1024];
        Roster *r = NULL;

        /* An empty folder is a valid, empty roster. */
        r = load_ok(f);
        assert_int_equal(r->n, 0);
        assert_int_equal(r->n_files, 0);
        roster_free(r);
        r = NULL;

        snprintf(path, sizeof path, "%s/missing", f->dir);
        assert_int_equal(roster_load_dir(path, f->config, &r, NULL, &f->diag), -ENOENT);
        assert_null(r);
        {
                char rest[1100];

                snprintf(rest, sizeof rest, "%s: error: cannot open roster folder: No such file or directory", path);
                assert_true(diag_has(f, NULL, rest));
        }
}

static void test_load_files(void **state) {
        Fixture *f = *state;
        char a[1024], b[1024];
        char *paths[2] = { a, b };
        Roster *r = NULL;

        snprintf(a, sizeof a, "%s/one.yaml", f->dir);
        snprintf(b, sizeof b, "%s/two.txt", f->dir);
        write_file(f, "one.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        write_file(f, "two.txt", "id,ou\n" U2 ",sales\n");
        assert_int_equal(roster_load_files(paths, 1, f->config, &r, &f->diag), 0);
        assert_int_equal(r->n, 1);
        roster_free(r);
        r = NULL;

        assert_int_equal(roster_load_files(paths, 2, f->config, &r, &f->diag), -EINVAL);
        assert_null(r);
        assert_true(diag_has(f, "two.txt", ":1:1: error: unknown roster format (the name must end in .yaml, .yml or .csv)"));
}

static void set_mtime(Fixture *f, const char *name, time_t t) {
        struct timespec times[2] = { { .tv_sec = t }, { .tv_sec = t } };
        char path[1024];

        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* The newest file's mtime: the metrics' age of the roster. Also for a folder read and for
 * files named on the command line; an empty folder has none. */
static void test_newest_file(void **state) {
        Fixture *f = *state;
        char a[1024];
        char *paths[1] = { a };
        Roster *r = NULL;

        r = load_ok(f);
        assert_int_equal(r->newest_usec, 0);
        roster_free(r);
        write_file(f, "one.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        write_file(f, "two.csv", "id,ou\n" U2 ",sales\n");
        set_mtime(f, "one.yaml", 1700000000);
        set_mtime(f, "two.csv", 1600000000);
        r = load_ok(f);
        assert_int_equal(r->newest_usec, 1700000000 * USEC_PER_SEC);
        roster_free(r);
        snprintf(a, sizeof a, "%s/two.csv", f->dir);
        assert_int_equal(roster_load_files(paths, 1, f->config, &r, &f->diag), 0);
        assert_int_equal(r->newest_usec, 1600000000 * USEC_PER_SEC);
        roster_free(r);
}

static void test_names_cut(void **state) {
        Fixture *f = *state;
        char text[2048], name[400];
        const RosterEntry *e;
        Roster *r;

        /* 255 ASCII bytes, then a two-byte character that would straddle the limit. */
        memset(name, 'n', 255);
        strcpy(name + 255, "\xc3\xa9tail-beyond-the-limit");
        snprintf(text, sizeof text, "users:\n  - o365_id: " U1 "\n    ou: support\n    name: \"%s\"\n"
                 "  - o365_id: " U2 "\n    ou: support\n    name: \"tab\\there\"\n", name);
        write_file(f, "n.yaml", text);
        r = load_ok(f);
        e = find(r, U1);
        assert_non_null(e);
        assert_int_equal(strlen(roster_entry_name(r, e)), 255);
        assert_true(strlen(roster_entry_name(r, e)) <= ROSTER_MAX_NAME);
        assert_int_equal(strncmp(roster_entry_name(r, e), name, 255), 0);
        assert_string_equal(roster_entry_name(r, find(r, U2)), "tab here");
        roster_free(r);
}

static void test_hash(void **state) {
        Fixture *f = *state;
        uint64_t h1, h2, h3;
        char from[1024], to[1024];
        Roster *r;

        write_file(f, "a.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n");
        r = load_ok(f);
        h1 = r->hash;
        roster_free(r);
        r = load_ok(f);
        assert_true(r->hash == h1);
        roster_free(r);

        /* A comment changes nothing in the entries, but the content is what is hashed. */
        write_file(f, "a.yaml", "users:\n  - o365_id: " U1 "\n    ou: support\n#\n");
        r = load_ok(f);
        h2 = r->hash;
        assert_true(h2 != h1);
        roster_free(r);

        snprintf(from, sizeof from, "%s/a.yaml", f->dir);
        snprintf(to, sizeof to, "%s/b.yaml", f->dir);
        assert_int_equal(rename(from, to), 0);
        r = load_ok(f);
        h3 = r->hash;
        assert_true(h3 != h2);
        roster_free(r);
}

static void test_limits(void **state) {
        Fixture *f = *state;
        RosterLimits limits = ROSTER_LIMITS_DEFAULT;
        Roster *r = NULL;

        write_file(f, "a.csv", "id,ou\n" U1 ",support\n" U2 ",support\n");
        write_file(f, "b.csv", "id,ou\n" U3 ",support\n" U4 ",support\n");

        limits.max_entries = 4;
        assert_int_equal(roster_load_dir_limits(f->dir, f->config, &limits, &r, NULL, &f->diag), 0);
        assert_int_equal(r->n, 4);
        r = roster_free(r);

        limits.max_entries = 3;
        assert_int_equal(roster_load_dir_limits(f->dir, f->config, &limits, &r, NULL, &f->diag), -EINVAL);
        assert_null(r);
        assert_true(diag_has(f, "b.csv", ":3: error: more than 3 entries in all roster files"));
        diag_clear(&f->diag);

        limits = ROSTER_LIMITS_DEFAULT;
        limits.max_file_size = 60;
        write_file(f, "b.csv", "id,ou\n" U3 ",support\n");
        assert_int_equal(roster_load_dir_limits(f->dir, f->config, &limits, &r, NULL, &f->diag), -EINVAL);
        assert_null(r);
        assert_int_equal(f->diag.n_errors, 1);
        assert_true(diag_has(f, "a.csv", ":1:1: error: file is larger than 60 bytes"));
        diag_clear(&f->diag);

        limits = ROSTER_LIMITS_DEFAULT;
        limits.max_files = 1;
        assert_int_equal(roster_load_dir_limits(f->dir, f->config, &limits, &r, NULL, &f->diag), -EINVAL);
        assert_null(r);
        {
                char rest[1100];

                snprintf(rest, sizeof rest, "%s: error: more than 1 roster files", f->dir);
                assert_true(diag_has(f, NULL, rest));
        }
}

/* Enough entries to take the bucket sort path, with duplicates far apart in reading order. */
static void test_many_entries(void **state) {
        Fixture *f = *state;
        const size_t n = 100000;
        size_t cap = n * 80 + 64, len = 0;
        char *buf = malloc(cap);
        Roster *r = NULL;
        uint64_t x = 0x9e3779b97f4a7c15;

        assert_non_null(buf);
        len += (size_t) snprintf(buf + len, cap - len, "id,ou\n");
        for (size_t i = 0; i < n; i++) {
                uint64_t a, b;

                if (i == n - 1) {
                        len += (size_t) snprintf(buf + len, cap - len, U1 "," OU_A "\n"); /* repeats line 2 */
                        continue;
                }
                if (i == 0) {
                        len += (size_t) snprintf(buf + len, cap - len, U1 "," OU_A "\n");
                        continue;
                }
                /* xorshift: reproducible, spread over all buckets; a few share a prefix */
                x ^= x << 13, x ^= x >> 7, x ^= x << 17, a = x;
                x ^= x << 13, x ^= x >> 7, x ^= x << 17, b = x;
                if (i % 1000 == 0)
                        a &= UINT64_C(0x0000ffffffffffff);
                len += (size_t) snprintf(buf + len, cap - len, "%08x-%04x-%04x-%04x-%012llx,%s\n",
                                         (unsigned) (a >> 32), (unsigned) (a >> 16) & 0xffff,
                                         (unsigned) a & 0xffff, (unsigned) (b >> 48),
                                         (unsigned long long) (b & UINT64_C(0xffffffffffff)),
                                         i % 2 ? "support" : OU_B);
        }
        assert_int_equal(roster_parse_buffer("many.csv", buf, len, f->config, &r, &f->diag), 0);
        free(buf);
        assert_int_equal(r->n, n - 1);
        assert_sorted(r);
        assert_int_equal(f->diag.n_warnings, 1);
        assert_int_equal(f->diag.entries[0].line, n + 1);
        assert_int_equal(find(r, U1)->line, 2);
        for (size_t i = 0; i < r->n; i += 997)
                assert_ptr_equal(roster_find(r, &r->entries[i].id), &r->entries[i]);
        roster_free(r);
}

static void test_parse_buffer(void **state) {
        Fixture *f = *state;
        const char text[] = "users:\n  - o365_id: " U1 "\n    ou: " OU_A "\n";
        Roster *r = NULL;

        /* Without a config only GUIDs name OUs. */
        assert_int_equal(roster_parse_buffer("x.yaml", text, strlen(text), NULL, &r, &f->diag), 0);
        assert_int_equal(r->n, 1);
        assert_string_equal(r->files[0], "x.yaml");
        roster_free(r);
        r = NULL;
        assert_int_equal(roster_parse_buffer("x.yaml", "ou: support\n", 12, NULL, &r, &f->diag), -EINVAL);
        assert_null(r);
        assert_null(roster_free(NULL));
}

/* ---- names, UPNs and per-file figures (the audit trail) --------------------------------------- */

static void test_upn_kept_beside_the_name(void **state) {
        Fixture *f = *state;
        char label[128];
        Roster *r;

        write_file(f, "team.yaml",
                   "users:\n"
                   "  - {o365_id: " U1 ", ou: " OU_A ", upn: jane@example.com, name: Jane Doe}\n"
                   "  - {o365_id: " U2 ", ou: " OU_A ", upn: john@example.com}\n"
                   "  - {o365_id: " U3 ", ou: " OU_A ", name: Ann}\n"
                   "  - {o365_id: " U4 ", ou: " OU_A "}\n");
        write_file(f, "export.csv",
                   "id,userPrincipalName,displayName,ou\n"
                   "55555555-5555-4555-8555-555555555555,eve@example.com,Eve," OU_B "\n");
        r = load_ok(f);
        assert_string_equal(roster_entry_given_name(r, find(r, U1)), "Jane Doe");
        assert_string_equal(roster_entry_upn(r, find(r, U1)), "jane@example.com");
        assert_string_equal(roster_entry_label(r, find(r, U1), label, sizeof(label)), "Jane Doe (jane@example.com)");
        assert_string_equal(roster_entry_given_name(r, find(r, U2)), "");
        assert_string_equal(roster_entry_name(r, find(r, U2)), "john@example.com");
        assert_string_equal(roster_entry_label(r, find(r, U2), label, sizeof(label)), "john@example.com");
        assert_string_equal(roster_entry_upn(r, find(r, U3)), "");
        assert_string_equal(roster_entry_label(r, find(r, U3), label, sizeof(label)), "Ann");
        assert_string_equal(roster_entry_label(r, find(r, U4), label, sizeof(label)), "");
        assert_string_equal(roster_entry_upn(r, find(r, U4)), "");
        assert_string_equal(roster_entry_given_name(r, find(r, "55555555-5555-4555-8555-555555555555")), "Eve");
        assert_string_equal(roster_entry_upn(r, find(r, "55555555-5555-4555-8555-555555555555")), "eve@example.com");
        roster_free(r);
}

/* Each file's user count and content hash: what the roster-load entry compares. */
static void test_file_stats(void **state) {
        Fixture *f = *state;
        uint64_t hash_a;
        Roster *r;

        write_file(f, "a.yaml", "users: [{o365_id: " U1 ", ou: " OU_A "}, {o365_id: " U2 ", ou: " OU_A "}]\n");
        write_file(f, "b.csv", "o365_id,ou\n" U3 "," OU_A "\n");
        r = load_ok(f);
        assert_int_equal(r->n_files, 2);
        assert_non_null(strstr(r->files[0], "a.yaml"));
        assert_int_equal(r->file_stats[0].users, 2);
        assert_int_equal(r->file_stats[1].users, 1);
        assert_true(r->file_stats[0].hash != r->file_stats[1].hash);
        hash_a = r->file_stats[0].hash;
        roster_free(r);

        write_file(f, "b.csv", "o365_id,ou\n" U3 "," OU_A "\n" U4 "," OU_A "\n");
        r = load_ok(f);
        assert_true(r->file_stats[0].hash == hash_a);   /* a.yaml did not change */
        assert_int_equal(r->file_stats[1].users, 2);
        roster_free(r);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_yaml_basic),
                T(test_yaml_default_ou),
                T(test_yaml_explicitly_empty),
                T(test_empty_files_are_errors),
                T(test_guid_spellings_are_equal),
                T(test_yaml_errors),
                T(test_yaml_several_errors_reported),
                T(test_upn_kept_beside_the_name),
                T(test_file_stats),
                T(test_csv_basic),
                T(test_csv_bom_semicolon_crlf),
                T(test_csv_tab),
                T(test_csv_quoting_and_lines),
                T(test_csv_header_aliases),
                T(test_csv_errors),
                T(test_csv_sep_line),
                T(test_encodings),
                T(test_conflict_across_files),
                T(test_one_broken_file_rejects_all),
                T(test_ignored_names),
                T(test_names_without_content_are_errors),
                T(test_fingerprint),
                T(test_folder_errors),
                T(test_load_files),
                T(test_newest_file),
                T(test_names_cut),
                T(test_hash),
                T(test_limits),
                T(test_many_entries),
                T(test_parse_buffer),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
