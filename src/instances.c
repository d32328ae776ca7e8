/* instances.c: finding the instances configured in a folder, and whether their units are
 * enabled, from the files alone (no running systemd needed). */
#include "instances.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define MAIN_CONFIG "config.yaml"
#define CONFIG_SUFFIX ".yaml"

/* NAME of NAME.yaml (a file name, no folder), or NULL: not a config name. */
static char *config_stem(const char *file) {
        size_t n = strlen(file), k = strlen(CONFIG_SUFFIX);

        if (n <= k || file[0] == '.' || !streq(file + n - k, CONFIG_SUFFIX))
                return NULL;
        return strndup(file, n - k);
}

int instance_name(const char *config_path, char **ret) {
        const char *slash = strrchr(config_path, '/'), *file = slash ? slash + 1 : config_path;
        _cleanup_free_ char *stem = config_stem(file);

        if (!stem)
                return -EINVAL;
        if (streq(file, MAIN_CONFIG))
                return strdup_checked("nimbus-sync", ret);
        return asprintf(ret, "nimbus-sync@%s", stem) < 0 ? (*ret = NULL, -ENOMEM) : 0;
}

static int config_filter(const struct dirent *e) {
        _cleanup_free_ char *stem = config_stem(e->d_name);

        return stem != NULL;
}

/* config.yaml before the others; the rest in name order. */
static int config_order(const struct dirent **a, const struct dirent **b) {
        bool main_a = streq((*a)->d_name, MAIN_CONFIG), main_b = streq((*b)->d_name, MAIN_CONFIG);

        return main_a != main_b ? (main_a ? -1 : 1) : strcmp((*a)->d_name, (*b)->d_name);
}

static int instance_fill(Instance *in, const char *dir, const char *file) {
        if (asprintf(&in->config_path, "%s/%s", dir, file) < 0) {
                in->config_path = NULL;
                return -ENOMEM;
        }
        return instance_name(in->config_path, &in->name);
}

int instances_find(const char *dir, Instance **ret, size_t *ret_n) {
        struct dirent **list = NULL;
        Instance *v = NULL;
        int n, k = 0;

        n = scandir(dir, &list, config_filter, config_order);
        if (n < 0)
                return -errno;
        if (n > INSTANCES_MAX)
                k = -E2BIG;
        else if (n > 0 && !(v = calloc((size_t) n, sizeof(*v))))
                k = -ENOMEM;
        for (int i = 0; i < n; i++) {
                if (k >= 0)
                        k = instance_fill(&v[i], dir, list[i]->d_name);
                free(list[i]);
        }
        free(list);
        if (k < 0) {
                instances_free(v, v ? (size_t) n : 0);
                return k;
        }
        *ret = v;
        *ret_n = (size_t) n;
        return 0;
}

void instances_free(Instance *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].name);
                free(v[i].config_path);
        }
        free(v);
}

bool instance_has_unit(const char *config_path) {
        _cleanup_free_ char *real = realpath(config_path, NULL);
        size_t n = strlen(INSTANCES_UNIT_CONFIG_DIR);

        return real && strncmp(real, INSTANCES_UNIT_CONFIG_DIR "/", n + 1) == 0 && !strchr(real + n + 1, '/');
}

static bool is_enable_folder(const char *name) {
        size_t n = strlen(name);

        return (n > 6 && streq(name + n - 6, ".wants")) || (n > 9 && streq(name + n - 9, ".requires"));
}

bool instance_unit_enabled(const char *enable_dir, const char *name) {
        DIR *d = opendir(enable_dir);
        struct dirent *e;
        char path[PATH_MAX];
        bool found = false;

        if (!d)
                return false;
        while (!found && (e = readdir(d)))
                if (is_enable_folder(e->d_name) &&
                    snprintf(path, sizeof(path), "%s/%s/%s.service", enable_dir, e->d_name, name) <
                    (int) sizeof(path))
                        found = access(path, F_OK) == 0;   /* a link to a unit still installed */
        closedir(d);
        return found;
}
