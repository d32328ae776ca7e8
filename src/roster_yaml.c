/* roster_yaml.c: reads a YAML roster (nimbus-sync.yaml(5), YAML rosters) with libyaml's event
 * parser.
 *
 * Events rather than a document tree: a million-user roster would otherwise cost a node per
 * scalar. Each entry's fields go straight to the RosterBuilder (roster.c), which owns the rules.
 * Unknown keys are errors: a typo such as `templte:` must not silently change what is created.
 * After a bad value reading goes on, to report every problem; after a syntax error the rest of
 * the file cannot be trusted and reading stops. */
#include <yaml.h>

#include "roster_internal.h"
#include "yaml_problem.h"
#include "util.h"

#define QUOTE_MAX 80
#define EMPTY_HINT "a roster that lists nobody must say so with `users: []`"
#define MAX_DEPTH 64 /* nesting inside a value we skip; a roster itself needs three levels */

typedef enum UserKey {
        KEY_O365_ID,
        KEY_OU,
        KEY_TEMPLATE,
        KEY_NAME,
        KEY_UPN,
        KEY_COMMENT,
        _KEY_MAX,
} UserKey;

static const char *const user_keys[_KEY_MAX] = {
        [KEY_O365_ID] = "o365_id", [KEY_OU] = "ou",   [KEY_TEMPLATE] = "template",
        [KEY_NAME] = "name",       [KEY_UPN] = "upn", [KEY_COMMENT] = "comment",
};

typedef struct YamlReader {
        RosterBuilder *b;
        const char *buf;
        size_t len;
        yaml_parser_t parser;
        yaml_event_t ev;        /* the current event */
        bool have_event;
        Guid default_ou;        /* the file's top-level `ou:` */
        bool has_default;
} YamlReader;

static unsigned ev_line(const YamlReader *y) {
        return (unsigned) y->ev.start_mark.line + 1;
}

static unsigned ev_col(const YamlReader *y) {
        return (unsigned) y->ev.start_mark.column + 1;
}

static const char *ev_value(const YamlReader *y) {
        return (const char *) y->ev.data.scalar.value;
}

static size_t ev_len(const YamlReader *y) {
        return y->ev.data.scalar.length;
}

static int qlen(size_t len) {
        return (int) (len < QUOTE_MAX ? len : QUOTE_MAX);
}

static bool ev_is_null(const YamlReader *y) {
        const char *v = ev_value(y);

        if (y->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        return v[0] == '\0' || streq(v, "~") || streq(v, "null") || streq(v, "Null") || streq(v, "NULL");
}

/* libyaml's own words, at its position; -EINVAL tells the callers to stop reading. */
static int report_syntax(YamlReader *y) {
        YamlProblem pr;

        if (yaml_problem(&y->parser, y->buf, y->len, &pr) < 0)
                return -ENOMEM;
        roster_error(y->b, pr.line, pr.col, "%s", pr.text);
        return -EINVAL;
}

static int next(YamlReader *y) {
        if (y->have_event) {
                yaml_event_delete(&y->ev);
                y->have_event = false;
        }
        if (!yaml_parser_parse(&y->parser, &y->ev))
                return report_syntax(y);
        y->have_event = true;
        return 0;
}

/* Step over the node that starts at the current event. libyaml's scanner takes time quadratic
 * in the nesting of flow collections ("[[[[..."), so a few hundred kilobytes of brackets would
 * stall reading for hours: deep nesting is an error that stops reading. */
static int skip_node(YamlReader *y) {
        unsigned depth = 0;

        for (;;) {
                yaml_event_type_t t = y->ev.type;
                int r;

                if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT)
                        depth++;
                else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT)
                        depth--;
                if (depth == 0)
                        return 0;
                if (depth > MAX_DEPTH)
                        return roster_error(y->b, ev_line(y), ev_col(y), "YAML nested more than %d levels "
                                            "deep", MAX_DEPTH);
                r = next(y);
                if (r < 0)
                        return r;
        }
}

/* Move to the value of a key and check that it is one plain value. Returns 1 when there is a
 * value to use, 0 when it is absent (null) or was wrong (reported and skipped). */
static int scalar_value(YamlReader *y, const char *key) {
        int r = next(y);

        if (r < 0)
                return r;
        if (y->ev.type == YAML_ALIAS_EVENT) {
                roster_error(y->b, ev_line(y), ev_col(y), "%s: YAML aliases are not supported in rosters", key);
                return 0;
        }
        if (y->ev.type != YAML_SCALAR_EVENT) {
                roster_error(y->b, ev_line(y), ev_col(y), "%s must be a single value, not a list or "
                             "mapping", key);
                return skip_node(y);
        }
        return ev_is_null(y) ? 0 : 1;
}

/* After a bad key (reported by the caller): step over it, which may itself be a collection,
 * and over its value. */
static int skip_pair(YamlReader *y) {
        int r = skip_node(y);

        if (r >= 0)
                r = next(y);
        return r < 0 ? r : skip_node(y);
}

/* Report a bad key, quoting it when it is a scalar, and step over the pair. */
static int bad_key(YamlReader *y, const char *what, const char *hint) {
        if (y->ev.type != YAML_SCALAR_EVENT)
                roster_error(y->b, ev_line(y), ev_col(y), "keys must be plain names");
        else
                roster_error(y->b, ev_line(y), ev_col(y), "%s \"%.*s\"%s", what, qlen(ev_len(y)),
                             ev_value(y), hint);
        return skip_pair(y);
}

static UserKey user_key(const char *s) {
        for (UserKey k = 0; k < _KEY_MAX; k++)
                if (streq(s, user_keys[k]))
                        return k;
        return _KEY_MAX;
}

static int user_field(YamlReader *y, RosterItem *it, UserKey k) {
        unsigned line, col;
        const char *v;
        size_t n;
        int r;

        r = scalar_value(y, user_keys[k]);
        if (r <= 0)
                return r;
        line = ev_line(y), col = ev_col(y), v = ev_value(y), n = ev_len(y);
        switch (k) {
        case KEY_O365_ID:
                roster_item_id(y->b, it, v, n, line, col);
                return 0;
        case KEY_OU:
                roster_item_ou(y->b, it, v, n, line, col);
                return 0;
        case KEY_TEMPLATE:
                roster_item_template(y->b, it, v, n, line, col);
                return 0;
        case KEY_NAME:
                return roster_item_name(y->b, it, v, n);
        case KEY_UPN:
                return roster_item_upn(y->b, it, v, n);
        default:
                return 0; /* comment: for people only */
        }
}

static int user_pair(YamlReader *y, RosterItem *it, unsigned *seen) {
        UserKey k;

        k = y->ev.type == YAML_SCALAR_EVENT ? user_key(ev_value(y)) : _KEY_MAX;
        if (k == _KEY_MAX)
                return bad_key(y, "unknown key", " (expected o365_id, ou, template, name, upn or comment)");
        if (*seen & (1u << k))
                return bad_key(y, "duplicate key", "");
        *seen |= 1u << k;
        return user_field(y, it, k);
}

static int parse_user(YamlReader *y) {
        unsigned seen = 0;
        RosterItem it;

        roster_item_begin(&it, ev_line(y), ev_col(y));
        for (;;) {
                int r = next(y);

                if (r < 0)
                        return r;
                if (y->ev.type == YAML_MAPPING_END_EVENT)
                        break;
                r = user_pair(y, &it, &seen);
                if (r < 0)
                        return r;
        }
        return roster_item_commit(y->b, &it, true);
}

/* The current event is the key `users`. */
static int parse_users(YamlReader *y) {
        unsigned line = ev_line(y), col = ev_col(y);
        int r = next(y);

        if (r < 0)
                return r;
        /* "users:" with nothing under it is what a truncated export looks like. */
        if (y->ev.type == YAML_SCALAR_EVENT && ev_is_null(y))
                return roster_error(y->b, line, col, "users has no value: %s", EMPTY_HINT) == -ENOMEM ?
                       -ENOMEM : 0;
        if (y->ev.type != YAML_SEQUENCE_START_EVENT) {
                roster_error(y->b, ev_line(y), ev_col(y), "users must be a list of entries");
                return skip_node(y);
        }
        for (;;) {
                r = next(y);
                if (r < 0)
                        return r;
                if (y->ev.type == YAML_SEQUENCE_END_EVENT)
                        return 0;
                if (y->ev.type == YAML_MAPPING_START_EVENT)
                        r = parse_user(y);
                else {
                        roster_error(y->b, ev_line(y), ev_col(y), "each entry of users must be a mapping "
                                     "(o365_id: ..., ou: ...)");
                        r = skip_node(y);
                }
                if (r < 0)
                        return r;
                if (y->b->full)
                        return -EINVAL; /* reported; reading on would only cost time */
        }
}

static int parse_default_ou(YamlReader *y) {
        int r = scalar_value(y, "ou");

        if (r <= 0)
                return r;
        y->has_default = true;
        (void) roster_resolve_ou(y->b, ev_value(y), ev_len(y), ev_line(y), ev_col(y), &y->default_ou);
        return 0;
}

/* The current event starts the root mapping. */
static int parse_root(YamlReader *y) {
        unsigned line = ev_line(y), col = ev_col(y);
        bool seen_ou = false, seen_users = false;

        for (;;) {
                bool is_ou, is_users;
                int r = next(y);

                if (r < 0)
                        return r;
                if (y->ev.type == YAML_MAPPING_END_EVENT)
                        return seen_users ? 0 : roster_error(y->b, line, col, "no users: %s", EMPTY_HINT);
                is_ou = y->ev.type == YAML_SCALAR_EVENT && streq(ev_value(y), "ou");
                is_users = y->ev.type == YAML_SCALAR_EVENT && streq(ev_value(y), "users");
                if ((is_ou && seen_ou) || (is_users && seen_users))
                        r = bad_key(y, "duplicate key", "");
                else if (is_ou)
                        r = parse_default_ou(y);
                else if (is_users)
                        r = parse_users(y);
                else
                        r = bad_key(y, "unknown key", " (expected ou or users)");
                seen_ou = seen_ou || is_ou;
                seen_users = seen_users || is_users;
                if (r < 0)
                        return r;
        }
}

/* A file without a document (only comments), or with an empty one, lists nobody by accident
 * far more often than on purpose: it is an error, and `users: []` says "nobody" on purpose. */
static int parse_stream(YamlReader *y) {
        int r;

        if ((r = next(y)) < 0 || (r = next(y)) < 0) /* stream start, then a document or the end */
                return r;
        if (y->ev.type == YAML_STREAM_END_EVENT)
                return roster_error(y->b, 1, 1, "no YAML document, only comments: %s", EMPTY_HINT);
        if ((r = next(y)) < 0)
                return r;
        if (y->ev.type == YAML_MAPPING_START_EVENT)
                r = parse_root(y);
        else if (y->ev.type == YAML_SCALAR_EVENT && ev_is_null(y))
                r = roster_error(y->b, ev_line(y), ev_col(y), "the document is empty: %s", EMPTY_HINT);
        else {
                roster_error(y->b, ev_line(y), ev_col(y), "a roster must be a mapping with users: (and "
                             "optionally ou:)");
                r = skip_node(y);
        }
        if (r < 0 || (r = next(y)) < 0 || (r = next(y)) < 0) /* document end, then the stream end */
                return r;
        if (y->ev.type != YAML_STREAM_END_EVENT)
                return roster_error(y->b, ev_line(y), ev_col(y), "a roster file holds one YAML document");
        return 0;
}

int roster_yaml_parse(RosterBuilder *b, const char *buf, size_t len) {
        YamlReader y = { .b = b, .buf = buf, .len = len };
        size_t first = b->n;
        int r;

        if (!yaml_parser_initialize(&y.parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&y.parser, (const unsigned char *) buf, len);

        r = parse_stream(&y);
        /* After a syntax error the file's default may be unread: blaming its entries would
         * mislead, and the roster is rejected anyway. */
        if (r == 0)
                roster_builder_default_ou(b, first, y.has_default ? &y.default_ou : NULL);

        if (y.have_event)
                yaml_event_delete(&y.ev);
        yaml_parser_delete(&y.parser);
        return r;
}
