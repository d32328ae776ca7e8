/* test_openfiles: which roster files a writer holds open, over tables of inotify event sequences:
 * a writer that paused, one that closed, a truncate(2) with nothing open, readers, two writers,
 * removal and renaming, a lost queue, and more files than are followed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/inotify.h>

#include "openfiles.h"
#include "util.h"

typedef struct Event {
        uint32_t mask;
        const char *name;
} Event;

typedef struct Case {
        const char *what;
        Event events[8];
        const char *held;       /* the name held at the end, or NULL */
} Case;

#define OPEN(n)     { IN_OPEN, n }
#define MODIFY(n)   { IN_MODIFY, n }
#define CLOSE_W(n)  { IN_CLOSE_WRITE, n }
#define CLOSE_R(n)  { IN_CLOSE_NOWRITE, n }

static const Case cases[] = {
        { "a writer that paused", { OPEN("a.yaml"), MODIFY("a.yaml") }, "a.yaml" },
        { "a writer that closed", { OPEN("a.yaml"), MODIFY("a.yaml"), CLOSE_W("a.yaml") }, NULL },
        { "opened, not written yet", { OPEN("a.yaml") }, NULL },
        { "truncate(2) or an mtime set, nothing open", { MODIFY("a.yaml") }, NULL },
        { "a reader", { OPEN("a.yaml"), CLOSE_R("a.yaml") }, NULL },
        { "a reader ends, the writer goes on",
          { OPEN("a.yaml"), OPEN("a.yaml"), MODIFY("a.yaml"), CLOSE_R("a.yaml") }, "a.yaml" },
        { "a reader's open after a closed write",
          { OPEN("a.yaml"), MODIFY("a.yaml"), CLOSE_W("a.yaml"), OPEN("a.yaml") }, NULL },
        { "a close whose open came before the watch", { CLOSE_W("a.yaml"), MODIFY("a.yaml") }, NULL },
        { "removed while open", { OPEN("a.yaml"), MODIFY("a.yaml"), { IN_DELETE, "a.yaml" } }, NULL },
        { "renamed away while open", { OPEN("a.yaml"), MODIFY("a.yaml"), { IN_MOVED_FROM, "a.yaml" } }, NULL },
        { "another file replaced it", { OPEN("a.yaml"), MODIFY("a.yaml"), { IN_MOVED_TO, "a.yaml" } }, NULL },
        { "one of two files", { OPEN("a.yaml"), OPEN("b.csv"), MODIFY("b.csv"), CLOSE_W("a.yaml") }, "b.csv" },
        { "the kernel's queue overflowed", { OPEN("a.yaml"), MODIFY("a.yaml"), { IN_Q_OVERFLOW, "" } }, NULL },
};

static void test_cases(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                OpenFiles o = { 0 };
                const char *held;

                for (size_t k = 0; k < ELEMENTSOF(cases[i].events) && cases[i].events[k].mask; k++)
                        assert_int_equal(openfiles_event(&o, cases[i].events[k].mask, cases[i].events[k].name), 0);
                held = openfiles_held(&o);
                if (!streq_ptr(held, cases[i].held))
                        fail_msg("%s: held %s, want %s", cases[i].what, held ? held : "nothing",
                                 cases[i].held ? cases[i].held : "nothing");
                openfiles_clear(&o);
                assert_int_equal(o.n, 0);
        }
}

/* Beyond OPENFILES_MAX files nothing more is followed (the settle time alone), and what is
 * followed stays right. */
static void test_bounded(void **state) {
        OpenFiles o = { 0 };
        char name[32];

        for (int i = 0; i < OPENFILES_MAX + 5; i++) {
                snprintf(name, sizeof name, "f%d.csv", i);
                assert_int_equal(openfiles_event(&o, IN_OPEN, name), 0);
                assert_int_equal(openfiles_event(&o, IN_MODIFY, name), 0);
        }
        assert_int_equal(o.n, OPENFILES_MAX);
        assert_non_null(openfiles_held(&o));
        for (int i = 0; i < OPENFILES_MAX + 5; i++) {
                snprintf(name, sizeof name, "f%d.csv", i);
                assert_int_equal(openfiles_event(&o, IN_CLOSE_WRITE, name), 0);
        }
        assert_null(openfiles_held(&o));
        assert_int_equal(o.n, 0);
        openfiles_clear(&o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cases),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
