/* fuzz_roster_csv: one CSV roster file (nimbus-sync.yaml(5), ROSTER FILES) through
 * roster_parse_buffer(): delimiter and header detection, BOM, CRLF, RFC 4180 quoting across lines.
 * Whatever the bytes, the reader must neither crash nor leak, must say why it rejects a file, and
 * an accepted roster must keep roster.h's promises. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_roster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        return fuzz_roster("roster.csv", data, size);
}
