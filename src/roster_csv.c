/* roster_csv.c: reads a CSV roster (nimbus-sync.yaml(5), CSV rosters) with libcsv.
 *
 * Exports from Entra ID and spreadsheets differ in delimiter, header spelling, BOM and line ends,
 * so the header decides: its most frequent delimiter (outside quotes) is used, unless Excel's
 * `sep=;` line comes first and names it, and its column names are matched case-insensitively
 * against known aliases; other columns are ignored.
 * libcsv is fed one physical line at a time, which tells us the line each record starts on even
 * when quoted fields span lines. Fields go straight to the RosterBuilder (roster.c). */
#include <csv.h>
#include <strings.h>

#include "roster_internal.h"
#include "util.h"

#define CSV_BLOCK (64 * 1024) /* libcsv grows its field buffer by this much, not by 128 bytes */

typedef enum Role {
        ROLE_IGNORE,
        ROLE_ID,
        ROLE_OU,
        ROLE_TEMPLATE,
        ROLE_NAME,
        ROLE_UPN,
        _ROLE_MAX,
} Role;

static const struct {
        const char *name;
        Role role;
} column_names[] = {
        { "o365_id", ROLE_ID },
        { "o365id", ROLE_ID },
        { "objectid", ROLE_ID },
        { "object id", ROLE_ID },
        { "id", ROLE_ID },
        { "ou", ROLE_OU },
        { "organizationunitid", ROLE_OU },
        { "organization_unit_id", ROLE_OU },
        { "template", ROLE_TEMPLATE },
        { "sourceo365id", ROLE_TEMPLATE },
        { "template_o365_id", ROLE_TEMPLATE },
        { "name", ROLE_NAME },
        { "displayname", ROLE_NAME },
        { "display name", ROLE_NAME },
        { "upn", ROLE_UPN },
        { "userprincipalname", ROLE_UPN },
        { "user principal name", ROLE_UPN },
};

static const char *const role_names[_ROLE_MAX] = {
        [ROLE_ID] = "O365 ID", [ROLE_OU] = "ou", [ROLE_TEMPLATE] = "template", [ROLE_NAME] = "name",
        [ROLE_UPN] = "upn",
};

typedef struct CsvReader {
        RosterBuilder *b;
        uint8_t *roles;         /* Role of each header column */
        size_t n_columns, cap_columns;
        size_t role_column[_ROLE_MAX]; /* 1-based column of each role, 0 = none */
        bool header_done;

        unsigned line;          /* the physical line being fed */
        unsigned record_line;   /* the line the current record started on */
        bool at_record_start;
        size_t field;           /* index of the next field in the record */
        bool any_value;         /* the record has a non-empty field */
        RosterItem item;
        int fatal;              /* -ENOMEM from a callback; -EINVAL: header unusable, stop */
} CsvReader;

static void trim(const char **s, size_t *len) {
        while (*len > 0 && (**s == ' ' || **s == '\t'))
                (*s)++, (*len)--;
        while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
                (*len)--;
}

static Role column_role(const char *s, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(column_names); i++)
                if (strlen(column_names[i].name) == len && strncasecmp(s, column_names[i].name, len) == 0)
                        return column_names[i].role;
        return ROLE_IGNORE;
}

static void header_field(CsvReader *c, const char *s, size_t len) {
        size_t column = c->n_columns + 1;
        Role role;
        uint8_t *n;

        trim(&s, &len);
        role = column_role(s, len);
        if ((role == ROLE_NAME || role == ROLE_UPN) && c->role_column[role] != 0)
                role = ROLE_IGNORE; /* informational: the first such column is enough */
        else if (role != ROLE_IGNORE && c->role_column[role] != 0) {
                roster_error(c->b, c->record_line, (unsigned) column, "columns %zu and %zu both give the %s",
                             c->role_column[role], column, role_names[role]);
                role = ROLE_IGNORE;
        } else if (role != ROLE_IGNORE)
                c->role_column[role] = column;

        if (c->n_columns == c->cap_columns) {
                size_t cap = c->cap_columns ? c->cap_columns * 2 : 32;

                n = realloc(c->roles, cap);
                if (!n) {
                        c->fatal = -ENOMEM;
                        return;
                }
                c->roles = n;
                c->cap_columns = cap;
        }
        c->roles[c->n_columns++] = (uint8_t) role;
}

static void header_end(CsvReader *c) {
        c->header_done = true;
        if (c->role_column[ROLE_ID] == 0) {
                roster_error(c->b, c->record_line, 0, "the header has no O365 ID column (one of: o365_id, "
                             "o365id, objectid, object id, id)");
                c->fatal = -EINVAL;
        } else if (c->role_column[ROLE_OU] == 0 && c->role_column[ROLE_TEMPLATE] == 0 &&
                   !c->b->file_default) {
                roster_error(c->b, c->record_line, 0, "the header has neither an ou column (ou, "
                             "organizationunitid, organization_unit_id) nor a template column (template, "
                             "sourceo365id, template_o365_id), and no roster_defaults entry matches the "
                             "file name");
                c->fatal = -EINVAL;
        }
}

static void record_field(CsvReader *c, const char *s, size_t len) {
        unsigned col = (unsigned) (c->field + 1);
        Role role = c->field < c->n_columns ? c->roles[c->field] : ROLE_IGNORE;
        RosterBuilder *b = c->b;
        int r = 0;

        if (c->field == 0)
                roster_item_begin(&c->item, c->record_line, 0);
        trim(&s, &len);
        if (len == 0)
                return; /* an empty cell counts as absent */
        c->any_value = true;

        switch (role) {
        case ROLE_ID:
                roster_item_id(b, &c->item, s, len, c->record_line, col);
                break;
        case ROLE_OU:
                roster_item_ou(b, &c->item, s, len, c->record_line, col);
                break;
        case ROLE_TEMPLATE:
                roster_item_template(b, &c->item, s, len, c->record_line, col);
                break;
        case ROLE_NAME:
                r = roster_item_name(b, &c->item, s, len);
                break;
        case ROLE_UPN:
                r = roster_item_upn(b, &c->item, s, len);
                break;
        default:
                break;
        }
        if (r < 0)
                c->fatal = r;
}

static void on_field(void *s, size_t len, void *userdata) {
        CsvReader *c = userdata;

        if (c->fatal)
                return;
        if (!c->header_done)
                header_field(c, s ? s : "", len);
        else
                record_field(c, s ? s : "", len);
        c->field++;
}

static void on_record(int terminator, void *userdata) {
        CsvReader *c = userdata;
        int r;

        if (!c->fatal && !c->header_done)
                header_end(c);
        else if (!c->fatal && c->any_value) {
                /* A line of empty cells (",,,") is a blank line, as spreadsheets write them. */
                r = roster_item_commit(c->b, &c->item, c->b->file_default != NULL);
                if (r < 0)
                        c->fatal = r;
        }
        c->field = 0;
        c->any_value = false;
        c->at_record_start = true;
}

/* The header's most frequent delimiter outside quotes; ties go to ','. Blank lines before the
 * header are skipped, as libcsv skips them. */
static unsigned char detect_delimiter(const char *s, size_t len) {
        size_t comma = 0, semicolon = 0, tab = 0, i = 0;
        bool quoted = false;

        while (i < len && (s[i] == '\r' || s[i] == '\n'))
                i++;
        for (; i < len && (quoted || s[i] != '\n'); i++) {
                if (s[i] == '"')
                        quoted = !quoted;
                else if (!quoted && s[i] == ',')
                        comma++;
                else if (!quoted && s[i] == ';')
                        semicolon++;
                else if (!quoted && s[i] == '\t')
                        tab++;
        }
        if (tab > comma && tab > semicolon)
                return '\t';
        if (semicolon > comma)
                return ';';
        return ',';
}

static bool line_is_blank(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
                        return false;
        return true;
}

/* Only the space is trimmed around unquoted fields: libcsv's default also trims tabs, which
 * would swallow empty fields of a tab-separated file. */
static int is_space(unsigned char c) {
        return c == ' ';
}

/* Feed one physical line; false when reading must stop. */
static bool feed_line(CsvReader *c, struct csv_parser *p, const char *s, size_t len) {
        size_t done;

        if (c->at_record_start && !line_is_blank(s, len)) {
                c->record_line = c->line;
                c->at_record_start = false;
        }
        done = csv_parse(p, s, len, on_field, on_record, c);
        if (done < len && csv_error(p) == CSV_ENOMEM)
                c->fatal = -ENOMEM;
        else if (done < len) {
                roster_error(c->b, c->line, (unsigned) done + 1, "malformed CSV: a quote inside an unquoted "
                             "field, or text after a closing quote");
                return false;
        }
        return c->fatal == 0 && !c->b->full;
}

static int parse_lines(CsvReader *c, struct csv_parser *p, const char *buf, size_t len) {
        size_t pos = 0;

        while (pos < len) {
                const char *nl = memchr(buf + pos, '\n', len - pos);
                size_t end = nl ? (size_t) (nl - buf) + 1 : len;

                if (!feed_line(c, p, buf + pos, end - pos))
                        return c->fatal == -ENOMEM ? -ENOMEM : -EINVAL;
                pos = end;
                c->line++;
        }
        if (csv_fini(p, on_field, on_record, c) != 0) {
                roster_error(c->b, c->record_line, 0, "unterminated quoted field (the file may be cut short)");
                return -EINVAL;
        }
        if (c->fatal)
                return c->fatal;
        if (!c->header_done)
                return roster_error(c->b, c->line, 0, "no header row: a roster that lists nobody must say so "
                                    "with its header row alone");
        return 0;
}

/* Excel's first line `sep=;` (or `sep=,`, or `sep=` and a tab, also written `sep=\t`) names
 * the delimiter; the header follows. Returns the delimiter and steps over the line, 0 when there
 * is no such line, or -EINVAL (reported) when it names another delimiter. */
static int sep_line(CsvReader *c, const char **buf, size_t *len) {
        const char *s = *buf, *nl = memchr(s, '\n', *len);
        size_t n = nl ? (size_t) (nl - s) : *len;
        char d;

        if (n < 4 || strncasecmp(s, "sep=", 4) != 0)
                return 0;
        if (n > 4 && s[n - 1] == '\r')
                n--;
        d = n == 6 && s[4] == '\\' && s[5] == 't' ? '\t' : n == 5 ? s[4] : '\0';
        if (d != ',' && d != ';' && d != '\t')
                return roster_error(c->b, 1, 5, "the sep= line must name one delimiter: , or ; or a tab");
        c->line = c->record_line = 2;
        *buf = nl ? nl + 1 : s + *len;
        *len -= (size_t) (*buf - s);
        return (unsigned char) d;
}

int roster_csv_parse(RosterBuilder *b, const char *buf, size_t len) {
        CsvReader c = { .b = b, .line = 1, .record_line = 1, .at_record_start = true };
        size_t first = b->n;
        struct csv_parser p;
        int r, delim;

        if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
                buf += 3;
                len -= 3;
        }
        delim = sep_line(&c, &buf, &len);
        if (delim < 0)
                return delim;

        if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0)
                return -ENOMEM;
        csv_set_delim(&p, delim > 0 ? (unsigned char) delim : detect_delimiter(buf, len));
        csv_set_space_func(&p, is_space);
        csv_set_blk_size(&p, CSV_BLOCK);

        r = parse_lines(&c, &p, buf, len);
        if (b->file_default)   /* roster_defaults: the target of rows that name none */
                roster_builder_default_ou(b, first, NULL);

        csv_free(&p);
        free(c.roles);
        return r;
}
