/* instances.h: the nimbus-sync instances configured on a host. /etc/nimbus-sync/config.yaml is
 * the main instance, run by nimbus-sync.service; every other /etc/nimbus-sync/NAME.yaml is one
 * more tenant, run by nimbus-sync@NAME.service (see nimbus-sync(8), MANY TENANTS). A folder of
 * configs elsewhere is read the same way, but no unit runs it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define INSTANCES_UNIT_CONFIG_DIR "/etc/nimbus-sync"   /* where the units read their configs */
#define INSTANCES_UNIT_ENABLE_DIR "/etc/systemd/system" /* where `systemctl enable` links them */
#define INSTANCES_MAX 1000                              /* configs in one folder */

typedef struct Instance {
        char *name;          /* nimbus-sync, nimbus-sync@NAME: the unit's name without .service */
        char *config_path;
} Instance;

/* The instance name of a config file: "nimbus-sync" for config.yaml, "nimbus-sync@NAME" for
 * NAME.yaml; -EINVAL for any other file name. */
int instance_name(const char *config_path, char **ret);

/* The instances of a folder: config.yaml first (if it exists), then every other NAME.yaml whose
 * name does not start with "." in name order. -E2BIG when there are more than INSTANCES_MAX. */
int instances_find(const char *dir, Instance **ret, size_t *ret_n);
void instances_free(Instance *v, size_t n);

/* Is config_path the file a unit reads, i.e. directly in INSTANCES_UNIT_CONFIG_DIR (symlinks
 * resolved)? */
bool instance_has_unit(const char *config_path);

/* Is the unit NAME.service enabled: linked from a *.wants or *.requires folder of enable_dir? */
bool instance_unit_enabled(const char *enable_dir, const char *name);
