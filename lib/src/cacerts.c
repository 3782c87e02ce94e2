/* cacerts.c — which CA certificates an https transfer verifies against:
 * the engine's store (cfg.ca_file, else the system's), plus or instead of
 * a request's own (rv_request.ca_pem, ca_only). See rv_cacerts_set.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* The text of the bundle a request's CA certificates add to: the engine's
 * ca_file, else libcurl's built-in default bundle (on Debian
 * /etc/ssl/certs/ca-certificates.crt). Read once, at the first request
 * that needs it; unreadable leaves e->ca_base NULL (the default CA path,
 * still set, then holds the system's store). */
#define CA_BASE_MAX (16u << 20)
static void ca_base_read(rv_engine *e, CURL *h) {
    const char *path = e->ca_file;
    FILE *f = NULL;
    char *buf = NULL;
    long len;

    e->ca_base_read = true;
    if (!path && (curl_easy_getinfo(h, CURLINFO_CAINFO, (char **)&path) != CURLE_OK || !path))
        return;
    f = fopen(path, "rbe");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || (size_t)len > CA_BASE_MAX ||
        fseek(f, 0, SEEK_SET) != 0 || !(buf = malloc((size_t)len + 1)) ||
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    } else {
        buf[len] = '\0';
        e->ca_base = buf;
        e->ca_base_len = (size_t)len;
    }
    if (f)
        fclose(f);
}

/* Which CA certificates the transfer's origin must chain to.
 *
 * An object's own ca_pem is handed over as CURLOPT_CAINFO_BLOB, never
 * through CURLOPT_SSL_CTX_FUNCTION: libcurl compares the blob when it
 * decides whether a connection or a TLS session may be reused (the CTX
 * callback it cannot compare), so a connection verified against one
 * request's extra CA is never handed to a request without it. A blob
 * replaces the CA file, so "adding" means the blob carries the base
 * bundle's text followed by the extra certificates; libcurl's default CA
 * path (hashed directory) stays set and is searched too. "Replacing"
 * (ca_only, and the engine's ca_file) also clears the CA path, which
 * would otherwise still trust the system's certificates. */
int rv_cacerts_set(rv_engine *e, rv_object *o, CURL *h) {
    if (o->insecure) {
        /* libcurl compares both when it reuses a connection or a TLS
         * session: an unverified one never serves a verifying request. */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        return RV_OK;
    }
    if (!o->ca_pem) {
        if (e->ca_file) {
            curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
            curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
        return RV_OK;
    }
    size_t n = strlen(o->ca_pem);
    if (o->ca_only || e->ca_file)
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    if (o->ca_only) {
        struct curl_blob b = {.data = o->ca_pem, .len = n, .flags = CURL_BLOB_COPY};
        return curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b) == CURLE_OK ? RV_OK : RV_E_NOMEM;
    }
    if (!e->ca_base_read)
        ca_base_read(e, h);
    char *all = malloc(e->ca_base_len + 1 + n);
    if (!all)
        return RV_E_NOMEM;
    if (e->ca_base_len)
        memcpy(all, e->ca_base, e->ca_base_len);
    all[e->ca_base_len] = '\n'; /* a bundle need not end with a newline */
    memcpy(all + e->ca_base_len + 1, o->ca_pem, n);
    struct curl_blob b = {.data = all, .len = e->ca_base_len + 1 + n, .flags = CURL_BLOB_COPY};
    CURLcode cr = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    free(all);
    return cr == CURLE_OK ? RV_OK : RV_E_NOMEM;
}
