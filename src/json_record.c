/* json_record.c: the store's small JSON records (see json_record.h). */
#include "json_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void json_record_put_u64(json_object *o, const char *key, uint64_t v) {
        json_object_object_add(o, key, json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v));
}

int json_record_get_u64(json_object *o, const char *key, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0)
                return -EINVAL;
        *ret = (uint64_t) json_object_get_int64(v);
        return 0;
}

int json_record_finish(json_object *o, char **ret) {
        int r = 0;

        if (!(*ret = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))))
                r = -ENOMEM;
        json_object_put(o);
        return r;
}
