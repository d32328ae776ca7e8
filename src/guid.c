/* guid.c: parsing and formatting of GUIDs. The 16 bytes are kept in the order the hex digits are
 * written (not Microsoft's mixed-endian layout), so sorting by bytes sorts like the canonical
 * lowercase text, and logs, the store and the roster all agree on one order. */
#include "guid.h"

#include <errno.h>

/* Hex digit value plus one, so 0 marks a character that is not a hex digit. A table, because
 * a million-user roster parses two million GUIDs. */
static const uint8_t hex_plus_one[256] = {
        ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,
        ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
        ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
        ['F'] = 16,
};

/* Where each byte's two digits start in "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
static const uint8_t byte_offset[16] = { 0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34 };

int guid_parse(const char *s, size_t len, Guid *ret) {
        const unsigned char *u = (const unsigned char *) s;
        Guid g;

        if (!s)
                return -EINVAL;
        if (len == 38) {
                if (u[0] != '{' || u[37] != '}')
                        return -EINVAL;
                u++;
                len = 36;
        }
        if (len != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-')
                return -EINVAL;

        for (size_t i = 0; i < 16; i++) {
                unsigned hi = hex_plus_one[u[byte_offset[i]]], lo = hex_plus_one[u[byte_offset[i] + 1]];

                if (hi == 0 || lo == 0)
                        return -EINVAL;
                g.b[i] = (uint8_t) ((hi - 1) << 4 | (lo - 1));
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
