/* yaml_problem.h: libyaml's own description of a syntax error, placed at the line and column an
 * admin needs, for every YAML file we read (the config and YAML rosters). */
#pragma once

#include <stddef.h>
#include <yaml.h>

typedef struct YamlProblem {
        unsigned line, col;     /* 1-based */
        char text[256];         /* "YAML syntax: ..." */
} YamlProblem;

/* -ENOMEM when libyaml ran out of memory; otherwise 0 with ret filled. buf and len are the text
 * that was parsed: reader errors (bad UTF-8) carry only a byte offset into it. */
int yaml_problem(const yaml_parser_t *p, const char *buf, size_t len, YamlProblem *ret);
