/* fuzz_graph_json: Microsoft Graph's answers (or anything posing as Graph), through the readers of
 * graph_api.h. The first input byte picks the reader, the rest is the body:
 *   0 a page of members   1 a group   2 an error message   3 a next link
 * Whatever the bytes, nothing may crash or leak, and what the readers hand on must keep
 * graph_api.h's promises: bounded member lists and names, next links only to graph_url's host,
 * one clean line per error. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "graph_api.h"
#include "util.h"

#define GRAPH "https://graph.microsoft.com"
#define MEMBER_LIMIT 50      /* small, so the bound itself is reached */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int no_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return 0;
        return 1;
}

static void fuzz_members(const char *body, size_t len) {
        GraphListing *l = NULL;
        char *next = NULL;
        int k;

        if (graph_listing_new(MEMBER_LIMIT, &l) < 0)
                return;
        k = graph_parse_members(body, len, GRAPH, l, &next);
        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -E2BIG || k == -EXDEV || k == -ENOMEM);
        FUZZ_CHECK(l->n <= MEMBER_LIMIT);
        FUZZ_CHECK(k == 0 || !next);
        if (next)
                FUZZ_CHECK(graph_link_allowed(GRAPH, next) && strlen(next) <= GRAPH_MAX_LINK);
        (void) graph_listing_finish(l);
        for (size_t i = 0; i < l->n; i++) {
                FUZZ_CHECK(strlen(graph_member_name(l, &l->members[i])) <= GRAPH_MAX_NAME);
                FUZZ_CHECK(no_control(graph_member_name(l, &l->members[i])));
                FUZZ_CHECK(no_control(graph_member_upn(l, &l->members[i])));
                FUZZ_CHECK(i == 0 || guid_cmp(&l->members[i - 1].id, &l->members[i].id) < 0);
        }
        free(next);
        graph_listing_free(l);
}

static void fuzz_group(const char *body, size_t len) {
        char *name = NULL;
        int k = graph_parse_group(body, len, &name);

        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        if (name)
                FUZZ_CHECK(k == 0 && strlen(name) <= GRAPH_MAX_NAME && no_control(name));
        free(name);
}

static void fuzz_error(const char *body, size_t len) {
        char *m = NULL;

        FUZZ_CHECK(graph_error_message(403, body, len, &m) == 0);
        FUZZ_CHECK(m[0] && strlen(m) <= GRAPH_MAX_MESSAGE && no_control(m));
        free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *body;

        if (size == 0)
                return 0;
        body = fuzz_dup(data + 1, size - 1, data[0] % 4 == 3);
        switch (data[0] % 4) {
        case 0: fuzz_members(body, size - 1); break;
        case 1: fuzz_group(body, size - 1); break;
        case 2: fuzz_error(body, size - 1); break;
        default: (void) graph_link_allowed(GRAPH, body); break;
        }
        free(body);
        return 0;
}
