/* guid.c: parsing and formatting of GUIDs. The 16 bytes are kept in the order the hex digits are
 * written (not Microsoft's mixed-endian layout), so sorting by bytes sorts like the canonical
 * lowercase text, and logs, the store and the roster all agree on one order. */
#include "guid.h"

#include <errno.h>

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static bool is_dash_position(size_t i) {
        return i == 8 || i == 13 || i == 18 || i == 23;
}

int guid_parse(const char *s, size_t len, Guid *ret) {
        Guid g;
        size_t nibble = 0;

        if (!s)
                return -EINVAL;
        if (len == 38) {
                if (s[0] != '{' || s[37] != '}')
                        return -EINVAL;
                s++;
                len = 36;
        }
        if (len != 36)
                return -EINVAL;

        for (size_t i = 0; i < 36; i++) {
                int v;

                if (is_dash_position(i)) {
                        if (s[i] != '-')
                                return -EINVAL;
                        continue;
                }
                v = hex_value(s[i]);
                if (v < 0)
                        return -EINVAL;
                if (nibble % 2 == 0)
                        g.b[nibble / 2] = (uint8_t) (v << 4);
                else
                        g.b[nibble / 2] |= (uint8_t) v;
                nibble++;
        }

        *ret = g;
        return 0;
}

char *guid_format(const Guid *g, char buf[GUID_STRING_MAX]) {
        static const char digits[] = "0123456789abcdef";
        size_t o = 0;

        for (size_t i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        buf[o++] = '-';
                buf[o++] = digits[g->b[i] >> 4];
                buf[o++] = digits[g->b[i] & 0xf];
        }
        buf[o] = '\0';
        return buf;
}

bool guid_is_null(const Guid *g) {
        static const Guid null_guid;

        return guid_eq(g, &null_guid);
}
