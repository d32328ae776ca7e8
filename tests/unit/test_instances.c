/* test_instances: which files of a config folder are instances and what they are called (the
 * unit that runs them), and when a unit counts as enabled, over temporary folders laid out as
 * /etc/nimbus-sync and /etc/systemd/system are. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instances.h"
#include "util.h"

static char *temp_dir(void) {
        char *dir = strdup("/tmp/test_instances.XXXXXX");

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        return dir;
}

static void touch(const char *dir, const char *name) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
}

static void remove_tree(const char *dir) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void test_names(void **state) {
        static const struct { const char *path, *name; } cases[] = {
                { "/etc/nimbus-sync/config.yaml", "nimbus-sync" },
                { "config.yaml", "nimbus-sync" },
                { "/etc/nimbus-sync/customer-a.yaml", "nimbus-sync@customer-a" },
                { "/srv/x/b.c.yaml", "nimbus-sync@b.c" },
                { "/etc/nimbus-sync/config.yaml.example", NULL },
                { "/etc/nimbus-sync/.hidden.yaml", NULL },
                { "/etc/nimbus-sync/.yaml", NULL },
                { "/etc/nimbus-sync/customer.yml", NULL },
                { "/etc/nimbus-sync/", NULL },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *name = NULL;
                int k = instance_name(cases[i].path, &name);
                if (!cases[i].name) {
                        assert_int_equal(k, -EINVAL);
                        continue;
                }
                assert_int_equal(k, 0);
                assert_string_equal(name, cases[i].name);
                free(name);
        }
}

static void test_find_orders_and_filters(void **state) {
        _cleanup_free_ char *dir = temp_dir();
        static const char *files[] = { "zeta.yaml", "config.yaml", "alpha.yaml", "config.yaml.example",
                                       ".alpha.yaml.swp", ".hidden.yaml", "client-secret", "b.yml" };
        Instance *v = NULL;
        size_t n = 0;
        char sub[512];

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                touch(dir, files[i]);
        assert_int_equal(instances_find(dir, &v, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(v[0].name, "nimbus-sync");
        assert_string_equal(v[1].name, "nimbus-sync@alpha");
        assert_string_equal(v[2].name, "nimbus-sync@zeta");
        snprintf(sub, sizeof(sub), "%s/alpha.yaml", dir);
        assert_string_equal(v[1].config_path, sub);
        instances_free(v, n);
        remove_tree(dir);

        assert_int_equal(instances_find("/nonexistent/nimbus-sync", &v, &n), -ENOENT);
}

static void test_find_is_bounded(void **state) {
        _cleanup_free_ char *dir = temp_dir();
        Instance *v = NULL;
        size_t n = 0;
        char name[32];

        (void) state;
        for (int i = 0; i < INSTANCES_MAX; i++) {
                snprintf(name, sizeof(name), "c%04d.yaml", i);
                touch(dir, name);
        }
        assert_int_equal(instances_find(dir, &v, &n), 0);
        assert_int_equal(n, INSTANCES_MAX);
        instances_free(v, n);
        touch(dir, "one-too-many.yaml");
        assert_int_equal(instances_find(dir, &v, &n), -E2BIG);
        remove_tree(dir);
}

static void link_unit(const char *dir, const char *folder, const char *unit, const char *target) {
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, folder);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", dir, folder, unit);
        assert_int_equal(symlink(target, path), 0);
}

static void test_unit_enabled(void **state) {
        _cleanup_free_ char *dir = temp_dir();
        char unit_file[512];

        (void) state;
        snprintf(unit_file, sizeof(unit_file), "%s/nimbus-sync@.service", dir);
        touch(dir, "nimbus-sync@.service");
        assert_false(instance_unit_enabled(dir, "nimbus-sync@a"));
        /* systemctl enable nimbus-sync@a: a link in the folder of WantedBy=. */
        link_unit(dir, "multi-user.target.wants", "nimbus-sync@a.service", unit_file);
        assert_true(instance_unit_enabled(dir, "nimbus-sync@a"));
        assert_false(instance_unit_enabled(dir, "nimbus-sync@b"));
        assert_false(instance_unit_enabled(dir, "nimbus-sync"));
        link_unit(dir, "custom.target.requires", "nimbus-sync.service", unit_file);
        assert_true(instance_unit_enabled(dir, "nimbus-sync"));
        /* A link left behind by a removed package enables nothing. */
        link_unit(dir, "multi-user.target.wants", "nimbus-sync@c.service", "/nonexistent/nimbus-sync@.service");
        assert_false(instance_unit_enabled(dir, "nimbus-sync@c"));
        /* Only *.wants and *.requires count: a unit file of that name is not an enabled unit. */
        touch(dir, "nimbus-sync@d.service");
        assert_false(instance_unit_enabled(dir, "nimbus-sync@d"));
        assert_false(instance_unit_enabled("/nonexistent", "nimbus-sync"));
        remove_tree(dir);
}

static void test_has_unit(void **state) {
        _cleanup_free_ char *dir = temp_dir();
        char path[512];

        (void) state;
        touch(dir, "config.yaml");
        snprintf(path, sizeof(path), "%s/config.yaml", dir);
        assert_false(instance_has_unit(path));
        assert_false(instance_has_unit("/nonexistent/nimbus-sync/config.yaml"));
        remove_tree(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_find_orders_and_filters),
                cmocka_unit_test(test_find_is_bounded),
                cmocka_unit_test(test_unit_enabled),
                cmocka_unit_test(test_has_unit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
