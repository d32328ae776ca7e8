/* fuzz_config: one config file (nimbus-sync.yaml(5)) through config_parse(). Whatever the bytes,
 * the parser must neither crash nor leak, must say why it rejects a config, and an accepted config
 * must be complete: everything config.h says is always set is set, defaults filled in, derived URLs
 * built, and the name and id lookups the roster readers rely on answer correctly. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A client secret (a file or a systemd credential) or a certificate with its key (likewise),
 * never both, never neither; files absolute, credentials plain names. */
static void check_credential(const Config *c) {
        bool secret = c->client_secret_file || c->client_secret_credential;
        bool cert = c->client_certificate_file || c->client_key_file || c->client_key_credential;

        FUZZ_CHECK(secret != cert);
        if (secret)
                FUZZ_CHECK(!c->client_secret_file != !c->client_secret_credential);
        else
                FUZZ_CHECK(c->client_certificate_file && !c->client_key_file != !c->client_key_credential);
        FUZZ_CHECK(!c->client_secret_file || c->client_secret_file[0] == '/');
        FUZZ_CHECK(!c->client_certificate_file || c->client_certificate_file[0] == '/');
        FUZZ_CHECK(!c->client_key_file || c->client_key_file[0] == '/');
        FUZZ_CHECK(!c->client_secret_credential || !strchr(c->client_secret_credential, '/'));
        FUZZ_CHECK(!c->client_key_credential || !strchr(c->client_key_credential, '/'));
}

static void check_config(const Config *c) {
        Guid g;

        FUZZ_CHECK(c->path && c->tenant_id_str && c->client_id);
        FUZZ_CHECK(guid_parse(c->tenant_id_str, strlen(c->tenant_id_str), &g) == 0 &&
                   guid_eq(&g, &c->tenant_id));
        check_credential(c);
        FUZZ_CHECK(c->api_base && ends_with(c->api_base, API_PATH));
        FUZZ_CHECK(c->token_url && c->scope);
        FUZZ_CHECK(c->roster_dir && c->roster_dir[0] == '/');
        FUZZ_CHECK(c->state_dir && c->state_dir[0] == '/');
        FUZZ_CHECK(!c->ca_file || c->ca_file[0] == '/');
        FUZZ_CHECK(c->rate_operations >= 1 && c->rate_window_usec >= 1);
        FUZZ_CHECK(c->retry.cap_usec >= c->retry.base_usec && c->retry.attempts >= 1);
        FUZZ_CHECK(c->deletes.max_percent <= 100);

        for (size_t i = 0; i < c->n_ous; i++) {
                Guid id;

                FUZZ_CHECK(config_resolve_ou(c, c->ous[i].name, strlen(c->ous[i].name), &id) == 0);
                FUZZ_CHECK(guid_eq(&id, &c->ous[i].id));
        }
        for (size_t i = 0; i < c->deletes.n_protected; i++) {
                FUZZ_CHECK(i == 0 || guid_cmp(&c->deletes.protected_ids[i - 1], &c->deletes.protected_ids[i]) < 0);
                FUZZ_CHECK(config_is_protected(c, &c->deletes.protected_ids[i]));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config *c = NULL;
        Diag d = DIAG_INIT;
        char *buf = fuzz_dup(data, size, 0);
        int k;

        /* An absolute path: relative paths in the config are resolved against its directory. */
        k = config_parse(CONFIG_DEFAULT_PATH, buf, size, &c, &d);
        if (k == 0) {
                FUZZ_CHECK(c && d.n_errors == 0);
                check_config(c);
        } else {
                FUZZ_CHECK(!c);
                FUZZ_CHECK(k == -ENOMEM || (k == -EINVAL && d.n_errors > 0));
        }
        fuzz_check_diag(&d);
        config_free(c);
        diag_clear(&d);
        free(buf);
        return 0;
}
