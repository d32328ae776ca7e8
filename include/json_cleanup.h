/* json_cleanup.h: scope-bound release of json-c objects, for every module that parses JSON
 * (`_cleanup_json_ struct json_object *j = NULL;`). json_object_put() accepts NULL. */
#pragma once

#include <json-c/json.h>

#include "util.h"

DEFINE_CLEANUP(struct json_object *, json_object_put)
#define _cleanup_json_ _cleanup_(json_object_putp)
