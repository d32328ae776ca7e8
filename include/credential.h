/* credential.h: the files of the config that prove who we are and whom we trust: the client
 * secret, or the certificate with its private key, and the extra trust anchor (ca_file). They
 * are read for use (credential_read) or only checked (credential_check, for `validate` and
 * `doctor`). Every one is opened without blocking and checked on the open descriptor: a FIFO or
 * a device is refused at once instead of waited on, and what is checked is what is read.
 * See nimbus-sync.yaml(5), CREDENTIALS. */
#pragma once

#include "config.h"
#include "diag.h"

/* The client's credential as read from disk: a secret, or a certificate with its private key
 * (PEM text, and the files they came from, for diagnostics). */
typedef struct ClientCredential {
        char *secret;
        char *cert_pem, *cert_path;
        char *key_pem, *key_path;
} ClientCredential;

/* Read the client secret: from client_secret_file, or from $CREDENTIALS_DIRECTORY/credential.
 * A file readable by group or others is refused with -EPERM; a missing or empty file is -ENOENT /
 * -EINVAL, anything but a regular file -EBADFD. Trailing newlines are stripped. On error a
 * one-line diagnostic is added. The secret is never put into a diagnostic. */
int credential_read_secret(const Config *c, char **ret, Diag *diag);

/* Read whichever credential the config names. The private key gets the secret's checks (a file
 * readable by group or others is -EPERM) and is never put into a diagnostic; the certificate may
 * be readable by anyone. On error a one-line diagnostic is added and *ret is left empty. */
int credential_read(const Config *c, ClientCredential *ret, Diag *diag);
/* Wipes the secret and the key from memory and frees everything. Accepts NULL. */
void client_credential_clear(ClientCredential *cred);

typedef enum CredentialCheckFlags {
        /* We are the user who must read the files: a file we may not open is an error, and so is
         * a systemd credential while $CREDENTIALS_DIRECTORY is unset. Without this flag both are
         * warnings ("not checked"), since an admin may check a config he cannot read himself. */
        CREDENTIAL_CHECK_STRICT = 1 << 0,
        /* Leave out client_secret_credential and client_key_credential: systemd reads those as
         * root and hands them over, so the service user need not be able to read their source. */
        CREDENTIAL_CHECK_FILES_ONLY = 1 << 1,
} CredentialCheckFlags;

/* Check, as the calling user, what using the config will need, without keeping anything: the
 * secret or key (a regular file, mode 0600 or stricter, not empty), the certificate (it and the
 * key parse and belong together), and ca_file (a readable file holding at least one PEM
 * certificate). Every problem is a one-line diagnostic naming the file; returns -EINVAL if any
 * was an error, else 0. */
int credential_check(const Config *c, unsigned flags, Diag *diag);
