/* json_record.h: the small JSON records nimbus-sync keeps in the state store's meta table (a
 * run's progress, the daemon's roster verdict): non-negative counters and times written and read
 * back strictly, and a record turned into one plain string. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

/* key: v, clamped to INT64_MAX (JSON integers are signed). */
void json_record_put_u64(json_object *o, const char *key, uint64_t v);
/* The counter the record must have: -EINVAL when missing, not an integer, or negative. */
int json_record_get_u64(json_object *o, const char *key, uint64_t *ret);
/* The record as one plain JSON string (owned by the caller); consumes o. -ENOMEM on failure. */
int json_record_finish(json_object *o, char **ret);
