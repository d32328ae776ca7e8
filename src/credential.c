/* credential.c: reading and checking the client secret, the certificate with its key, and
 * ca_file (see credential.h). A secret or a key is refused when group or others may read it; the
 * certificate and ca_file are public. */
#include "credential.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwt.h"
#include "util.h"

#define CA_FILE_MAX_SIZE (4 * 1024 * 1024)   /* a whole CA bundle fits */

/* A file that only we may read: the client secret or the private key. */
typedef struct PrivateFile {
        const char *what;           /* "secret file", "key file": for messages */
        const char *path;           /* the configured path, or NULL */
        const char *credential;     /* else this name inside $CREDENTIALS_DIRECTORY */
        const char *credential_key; /* the config key naming the credential, for messages */
} PrivateFile;

static PrivateFile secret_file(const Config *c) {
        return (PrivateFile) { "secret file", c->client_secret_file, c->client_secret_credential,
                               "client_secret_credential" };
}

static PrivateFile key_file(const Config *c) {
        return (PrivateFile) { "key file", c->client_key_file, c->client_key_credential,
                               "client_key_credential" };
}

/* Whether a problem that may only be the calling user's (it cannot see the file) is reported
 * as a warning: a check by an admin who is not the service user. */
static bool soft(unsigned flags, int r) {
        return !(flags & CREDENTIAL_CHECK_STRICT) && r == -EACCES && geteuid() != 0;
}

static int report_not_checked(const char *path, const char *what, Diag *diag) {
        return diag_add(diag, DIAG_WARNING, path, 0, 0, "%s not checked: user %u may not read it "
                        "(run as root or as the service user)", what, (unsigned) geteuid());
}

static int private_path(const Config *c, const PrivateFile *pf, unsigned flags, char **ret, Diag *diag) {
        const char *dir;

        if (pf->path)
                return strdup_checked(pf->path, ret);
        dir = getenv("CREDENTIALS_DIRECTORY");
        if ((!dir || !*dir) && (flags & CREDENTIAL_CHECK_STRICT))
                return diag_add(diag, DIAG_ERROR, c->path, 0, 0, "%s is set but $CREDENTIALS_DIRECTORY "
                                "is not (run under systemd with LoadCredential=)", pf->credential_key);
        if (!dir || !*dir) {
                diag_add(diag, DIAG_WARNING, c->path, 0, 0, "%s not checked: $CREDENTIALS_DIRECTORY is "
                         "not set (by hand, as root: CREDENTIALS_DIRECTORY=/etc/nimbus-sync)",
                         pf->credential_key);
                return -ENOENT;
        }
        if (asprintf(ret, "%s/%s", dir, pf->credential) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Without O_NONBLOCK, opening a FIFO waits for a writer for ever; the fstat() that follows
 * refuses it. */
static int open_private(const char *path, const char *what, unsigned flags, Diag *diag) {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        int r = -errno;

        if (fd >= 0)
                return fd;
        if (soft(flags, r))
                report_not_checked(path, what, diag);
        else
                diag_add(diag, DIAG_ERROR, path, 0, 0, "cannot open %s: %s", what, strerror(-r));
        return r;
}

/* Checks on the open file, so what is checked is what is read. */
static int private_check(int fd, const char *path, const char *what, Diag *diag) {
        struct stat st;

        if (fstat(fd, &st) < 0) {
                int r = -errno;

                diag_add(diag, DIAG_ERROR, path, 0, 0, "cannot stat %s: %s", what, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                diag_add(diag, DIAG_ERROR, path, 0, 0, "%s is not a regular file", what);
                return -EBADFD;
        }
        if (st.st_mode & 077) {
                diag_add(diag, DIAG_ERROR, path, 0, 0, "%s is readable by group or others "
                         "(mode %04o); run chmod 600 %s", what, (unsigned) (st.st_mode & 07777), path);
                return -EPERM;
        }
        return 0;
}

static int private_read(int fd, const char *path, const char *what, char **ret, Diag *diag) {
        char *buf = NULL;
        size_t len;
        int r;

        r = read_fd_bounded(fd, SECRET_MAX_SIZE, &buf, &len);
        if (r == -EFBIG)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "%s is larger than %d bytes", what, SECRET_MAX_SIZE);
        else if (r < 0)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "cannot read %s: %s", what, strerror(-r));
        if (r < 0)
                return r;

        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                buf[--len] = '\0';
        if (len == 0 || strlen(buf) != len) {
                erase_and_free(buf);
                return diag_add(diag, DIAG_ERROR, path, 0, 0, len == 0 ? "%s is empty" :
                                "%s contains a NUL byte", what);
        }
        *ret = buf;
        return 0;
}

/* The contents, and the path it was read from when ret_path is not NULL. */
static int private_file_read(const Config *c, const PrivateFile *pf, unsigned flags, char **ret,
                             char **ret_path, Diag *diag) {
        _cleanup_free_ char *path = NULL;
        int fd, r;

        r = private_path(c, pf, flags, &path, diag);
        if (r < 0)
                return r;
        /* Symlinks are followed: systemd credentials and config management tools use them. */
        fd = open_private(path, pf->what, flags, diag);
        if (fd < 0)
                return fd;
        r = private_check(fd, path, pf->what, diag);
        if (r == 0)
                r = private_read(fd, path, pf->what, ret, diag);
        close(fd);
        if (r == 0 && ret_path)
                *ret_path = TAKE_PTR(path);
        return r;
}

/* A file anyone may read: the certificate, ca_file. */
static int public_read(const char *path, const char *what, size_t max, unsigned flags, char **ret,
                       size_t *ret_len, Diag *diag) {
        int r = read_file_bounded(path, max, ret, ret_len);

        if (r == -EFBIG)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "%s is larger than %zu bytes", what, max);
        else if (r == -EBADFD)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "%s is not a regular file", what);
        else if (soft(flags, r))
                report_not_checked(path, what, diag);
        else if (r < 0)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "cannot read %s: %s", what, strerror(-r));
        return r;
}

int credential_read_secret(const Config *c, char **ret, Diag *diag) {
        const PrivateFile pf = secret_file(c);

        if (!pf.path && !pf.credential)
                return diag_add(diag, DIAG_ERROR, c->path, 0, 0, "no client secret is configured");
        return private_file_read(c, &pf, CREDENTIAL_CHECK_STRICT, ret, NULL, diag);
}

/* The certificate is public: any mode will do. The key is as private as a secret. */
static int certificate_read(const Config *c, unsigned flags, ClientCredential *cred, Diag *diag) {
        const PrivateFile pf = key_file(c);
        int r;

        if (!pf.path && !pf.credential)
                return diag_add(diag, DIAG_ERROR, c->path, 0, 0, "no private key is configured");
        r = strdup_checked(c->client_certificate_file, &cred->cert_path);
        if (r < 0)
                return r;
        r = public_read(cred->cert_path, "certificate file", CERT_MAX_SIZE, flags, &cred->cert_pem,
                        NULL, diag);
        if (r < 0 || (!pf.path && (flags & CREDENTIAL_CHECK_FILES_ONLY)))
                return r;
        return private_file_read(c, &pf, flags, &cred->key_pem, &cred->key_path, diag);
}

int credential_read(const Config *c, ClientCredential *ret, Diag *diag) {
        ClientCredential cred = { 0 };
        int r;

        if (c->client_certificate_file)
                r = certificate_read(c, CREDENTIAL_CHECK_STRICT, &cred, diag);
        else
                r = credential_read_secret(c, &cred.secret, diag);
        if (r < 0) {
                client_credential_clear(&cred);
                return r;
        }
        *ret = cred;
        return 0;
}

void client_credential_clear(ClientCredential *cred) {
        if (!cred)
                return;
        erase_and_free(cred->secret);
        erase_and_free(cred->key_pem);
        free(cred->key_path);
        free(cred->cert_pem);
        free(cred->cert_path);
        *cred = (ClientCredential) { 0 };
}

/* ---- checks ------------------------------------------------------------------------------ */

/* PEM_read_bio_X509 skips blocks of other types (a CRL, a key) on its way to a certificate. */
static bool pem_has_certificate(const char *text, size_t len) {
        BIO *b = BIO_new_mem_buf(text, (int) len);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        bool found = x != NULL;

        X509_free(x);
        BIO_free(b);
        ERR_clear_error();
        return found;
}

static int check_secret(const Config *c, unsigned flags, Diag *diag) {
        const PrivateFile pf = secret_file(c);
        char *secret = NULL;
        int r;

        if (!pf.path && (flags & CREDENTIAL_CHECK_FILES_ONLY))
                return 0;
        r = private_file_read(c, &pf, flags, &secret, NULL, diag);
        erase_and_free(secret);
        return r;
}

/* With the key at hand, the same checks as for use: both parse and belong together. */
static int check_certificate(const Config *c, unsigned flags, Diag *diag) {
        ClientCredential cred = { 0 };
        JwtSigner *signer = NULL;
        int r;

        r = certificate_read(c, flags, &cred, diag);
        if (r >= 0 && cred.key_pem)
                r = jwt_signer_new(cred.cert_pem, cred.cert_path, cred.key_pem, cred.key_path,
                                   c->client_assertion_alg, &signer, diag);
        else if (r >= 0 && !pem_has_certificate(cred.cert_pem, strlen(cred.cert_pem)))
                r = diag_add(diag, DIAG_ERROR, cred.cert_path, 0, 0, "not a PEM certificate");
        jwt_signer_free(signer);
        client_credential_clear(&cred);
        return r;
}

static int check_ca_file(const char *path, unsigned flags, Diag *diag) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        r = public_read(path, "ca_file", CA_FILE_MAX_SIZE, flags, &text, &len, diag);
        if (r < 0)
                return r;
        if (!pem_has_certificate(text, len))
                return diag_add(diag, DIAG_ERROR, path, 0, 0, "ca_file holds no PEM certificate "
                                "(-----BEGIN CERTIFICATE-----)");
        return 0;
}

int credential_check(const Config *c, unsigned flags, Diag *diag) {
        size_t errors = diag->n_errors;
        int r;

        r = c->client_certificate_file ? check_certificate(c, flags, diag) : check_secret(c, flags, diag);
        if (r != -ENOMEM && c->ca_file)
                r = check_ca_file(c->ca_file, flags, diag);
        if (r == -ENOMEM)
                return r;
        return diag->n_errors > errors ? -EINVAL : 0;
}
