/* jwt.h: the client assertion of Entra ID's certificate credentials (RFC 7523, OpenID Connect's
 * private_key_jwt): a JWT that names the application's certificate by its SHA-256 thumbprint
 * (x5t#S256) and is signed with the certificate's private key, PS256 (RSASSA-PSS, as Microsoft's
 * current documentation asks) or RS256 (RSASSA-PKCS1-v1_5). The token request sends it instead of
 * a client secret. OpenSSL does the cryptography and the base64, json-c the JSON. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

#define JWT_ASSERTION_LIFETIME_SEC 600  /* Entra accepts up to a day; ten minutes is plenty */
#define JWT_RSA_MIN_BITS 2048           /* Entra refuses shorter keys */

typedef struct JwtSigner JwtSigner;

/* The signature algorithm (RFC 7518 §3.1); config key client_assertion_alg. */
typedef enum JwtAlg {
        JWT_ALG_PS256,  /* RSASSA-PSS, SHA-256, MGF1 with SHA-256, salt as long as the digest */
        JWT_ALG_RS256,  /* RSASSA-PKCS1-v1_5 with SHA-256 */
} JwtAlg;

/* "PS256" or "RS256": the JWS header's alg. */
const char *jwt_alg_name(JwtAlg alg);

/* From PEM text: an X.509 certificate and its unencrypted RSA private key (the two may be the
 * same text), signing with alg. cert_name and key_name say where they came from, for diagnostics. -EBADMSG if one
 * does not parse, -EKEYREJECTED if the key is not RSA of at least JWT_RSA_MIN_BITS or does not
 * belong to the certificate; a one-line diagnostic is added. Nothing of the key is ever put into
 * a diagnostic. An expired certificate only gets a warning: Entra decides. */
int jwt_signer_new(const char *cert_pem, const char *cert_name, const char *key_pem,
                   const char *key_name, JwtAlg alg, JwtSigner **ret, Diag *diag);
JwtSigner *jwt_signer_free(JwtSigner *s);

/* A fresh signed assertion for the client-credentials grant: iss and sub are client_id, aud the
 * token endpoint's URL, nbf and iat now, exp now + JWT_ASSERTION_LIFETIME_SEC, jti a random UUID.
 * It is a credential for its lifetime: never log it. */
int jwt_client_assertion(const JwtSigner *s, const char *client_id, const char *audience,
                         uint64_t now_usec, char **ret);

/* base64url without padding (RFC 7515 §2), as JWTs use it. */
int jwt_base64url(const void *data, size_t len, char **ret);
