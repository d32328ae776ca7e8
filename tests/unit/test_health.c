/* test_health: the verdict of `status --check` over a table of instance states: which facts make
 * an instance WARNING or CRITICAL, the reasons it gives (critical first), and that the reason
 * line stays one line, without "|", and is cut cleanly when it does not fit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "health.h"

/* A healthy instance: it has run, the credentials work, the roster is valid, nothing remains.
 * RAN: it has run, and the rest is given. */
#define HEALTHY .has_state = true, .auth_state = "ok"
#define RAN .has_state = true

typedef struct Case {
        const char *name;
        HealthFacts facts;
        HealthLevel level;
        const char *reasons;
} Case;

static const Case cases[] = {
        { "healthy", { HEALTHY }, HEALTH_OK, "" },
        { "healthy, auth not known yet", { .has_state = true }, HEALTH_OK, "" },
        { "daemon running", { HEALTHY, .daemon_running = true, .unit_enabled = true }, HEALTH_OK, "" },
        { "no daemon, none expected (apply from cron)", { HEALTHY }, HEALTH_OK, "" },
        { "held deletes", { HEALTHY, .held = 3 }, HEALTH_WARNING, "3 deletes held" },
        { "one held delete", { HEALTHY, .held = 1 }, HEALTH_WARNING, "1 delete held" },
        { "failed", { HEALTHY, .failed = 2 }, HEALTH_WARNING, "2 failed" },
        { "quarantined", { HEALTHY, .quarantined = 1 }, HEALTH_WARNING, "1 quarantined" },
        { "all warnings", { HEALTHY, .held = 30, .failed = 2, .quarantined = 1, .sources_failed = 2 },
          HEALTH_WARNING, "30 deletes held; 2 failed; 1 quarantined; 2 Entra groups not read (their last "
          "complete list in force)" },
        { "an Entra group not read", { HEALTHY, .sources_failed = 1 }, HEALTH_WARNING,
          "1 Entra group not read (its last complete list in force)" },
        { "never ran", { .has_state = false }, HEALTH_WARNING, "no state yet: nimbus-sync has not run" },
        { "auth failed", { RAN, .auth_state = "failed", .auth_error = "AADSTS7000215: Invalid client secret" },
          HEALTH_CRITICAL, "credentials refused, tenant paused: AADSTS7000215: Invalid client secret" },
        { "auth paused, no reason", { RAN, .auth_state = "paused" }, HEALTH_CRITICAL,
          "credentials refused, tenant paused: no reason given" },
        { "roster rejected", { HEALTHY, .roster_error = "a.csv:3:1: error: bad GUID" }, HEALTH_CRITICAL,
          "roster rejected: a.csv:3:1: error: bad GUID" },
        { "unit enabled, daemon not running", { HEALTHY, .unit_enabled = true }, HEALTH_CRITICAL,
          "daemon not running (its unit is enabled)" },
        { "daemon vanished", { HEALTHY, .daemon_gone_pid = 4242 }, HEALTH_CRITICAL,
          "daemon not running (pid 4242 ended without stopping)" },
        { "daemon vanished, unit enabled: said once", { HEALTHY, .daemon_gone_pid = 7, .unit_enabled = true },
          HEALTH_CRITICAL, "daemon not running (pid 7 ended without stopping)" },
        { "never ran, but the unit is enabled", { .unit_enabled = true }, HEALTH_CRITICAL,
          "daemon not running (its unit is enabled); no state yet: nimbus-sync has not run" },
        { "store unreadable", { .store_error = "Permission denied" }, HEALTH_CRITICAL,
          "state store unreadable: Permission denied" },
        { "config invalid: nothing else is judged", { .config_error = "x.yaml:2:1: error: unknown key", .held = 5,
          .unit_enabled = true }, HEALTH_CRITICAL, "config invalid: x.yaml:2:1: error: unknown key" },
        { "shared state_dir", { HEALTHY, .shares_state_with = "nimbus-sync" }, HEALTH_CRITICAL,
          "same state_dir as nimbus-sync" },
        { "critical reasons before warnings", { RAN, .held = 4, .auth_state = "failed", .auth_error = "x",
          .roster_error = "r.yaml:1:1: error: y" }, HEALTH_CRITICAL,
          "credentials refused, tenant paused: x; roster rejected: r.yaml:1:1: error: y; 4 deletes held" },
        { "one line, no perfdata separator", { RAN, .auth_state = "failed", .auth_error = "a|b\nc\td" },
          HEALTH_CRITICAL, "credentials refused, tenant paused: a/b c d" },
};

static void test_table(void **state) {
        char buf[512];

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                HealthLevel level = health_assess(&cases[i].facts, buf, sizeof(buf));
                if (level != cases[i].level || strcmp(buf, cases[i].reasons) != 0)
                        fail_msg("%s: got %s \"%s\", expected %s \"%s\"", cases[i].name,
                                 health_level_name(level), buf, health_level_name(cases[i].level),
                                 cases[i].reasons);
        }
}

static void test_level_names(void **state) {
        (void) state;
        assert_string_equal(health_level_name(HEALTH_OK), "OK");
        assert_string_equal(health_level_name(HEALTH_WARNING), "WARNING");
        assert_string_equal(health_level_name(HEALTH_CRITICAL), "CRITICAL");
}

/* A long server message is cut to the buffer, never inside a UTF-8 character, and the warnings
 * that no longer fit still count. */
static void test_cut_to_the_buffer(void **state) {
        HealthFacts f = { RAN, .auth_state = "failed", .held = 2,
                          .auth_error = "Zugriff verweigert: \xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" };
        char buf[48];

        (void) state;
        for (size_t size = 1; size <= sizeof(buf); size++) {
                HealthLevel level = health_assess(&f, buf, size);
                assert_int_equal(level, HEALTH_CRITICAL);
                assert_true(strlen(buf) < size);
                /* "ä" is \xc3\xa4: a cut leaves no lone \xc3 at the end. */
                assert_false(strlen(buf) > 0 && (unsigned char) buf[strlen(buf) - 1] == 0xc3);
                assert_memory_equal(buf, "credentials refused, tenant paused: Zugriff verweigert: "
                                    "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4; 2 deletes held", strlen(buf));
        }
        f.auth_state = "ok";
        assert_int_equal(health_assess(&f, buf, 4), HEALTH_WARNING);
        assert_string_equal(buf, "2 d");
        assert_int_equal(health_assess(&f, buf, 0), HEALTH_CRITICAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_level_names),
                cmocka_unit_test(test_cut_to_the_buffer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
