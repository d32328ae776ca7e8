/* yaml_problem.c: where and what a libyaml syntax error is (see yaml_problem.h). */
#include "yaml_problem.h"

#include <errno.h>
#include <stdio.h>

int yaml_problem(const yaml_parser_t *p, const char *buf, size_t len, YamlProblem *ret) {
        unsigned line = (unsigned) p->problem_mark.line + 1, col = (unsigned) p->problem_mark.column + 1;

        if (p->error == YAML_MEMORY_ERROR)
                return -ENOMEM;
        if (p->error == YAML_READER_ERROR) {
                line = 1, col = 1;
                for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
                        if (buf[i] == '\n')
                                line++, col = 0;
        }
        ret->line = line;
        ret->col = col;
        if (p->context)
                snprintf(ret->text, sizeof(ret->text), "YAML syntax: %s (%s that starts at line %zu)",
                         p->problem ? p->problem : "error", p->context, p->context_mark.line + 1);
        else
                snprintf(ret->text, sizeof(ret->text), "YAML syntax: %s", p->problem ? p->problem : "error");
        return 0;
}
