/* s3conf.c — S3 endpoint, region and credentials for retrieverctl
 * (s3conf.h). The credentials are read here and handed to the engine
 * only: never printed, never in a URL. */
#include "s3conf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

enum { S_ENDPOINT, S_REGION, S_KEY_ID, S_SECRET, S_TOKEN };

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Read the keys of section [section] (or, in the config file, [profile
 * NAME]) of an INI file into out[], for the names in keys[]; values found
 * earlier are kept (the caller reads the winning source first). A missing
 * file is no error. */
static int read_ini(const char *path, const char *profile, bool config, const char *const keys[],
                    char *out[], size_t n_keys) {
    FILE *f = fopen(path, "re");
    char line[4096];
    bool in = false;
    int r = RV_OK;
    if (!f)
        return RV_OK;
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line);
        if (s[0] == '[') {
            char *end = strchr(s, ']');
            if (!end)
                continue;
            *end = '\0';
            char *name = trim(s + 1);
            if (config && strncmp(name, "profile ", 8) == 0)
                name = trim(name + 8);
            in = strcmp(name, profile) == 0;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq || s[0] == '#' || s[0] == ';')
            continue;
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        for (size_t i = 0; i < n_keys; i++)
            if (!out[i] && strcmp(k, keys[i]) == 0 && v[0] && !(out[i] = strdup(v)))
                r = RV_E_NOMEM;
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    return r;
}

static char *home_file(const char *over, const char *rel) {
    char *p = NULL;
    const char *home = env("HOME");
    if (over)
        return strdup(over);
    if (!home || asprintf(&p, "%s/%s", home, rel) < 0)
        return NULL;
    return p;
}

int rvc_s3_load(const rvc_download_opts *o, rvc_s3 *s, const char **why) {
    static const char *const cred_keys[] = {"aws_access_key_id", "aws_secret_access_key",
                                            "aws_session_token"};
    static const char *const conf_keys[] = {"endpoint_url", "region", "aws_access_key_id",
                                            "aws_secret_access_key", "aws_session_token"};
    char **v = s->strings;
    char *conf[5] = {NULL}, *cred[3] = {NULL};
    const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
    char *cred_path = home_file(env("AWS_SHARED_CREDENTIALS_FILE"), ".aws/credentials");
    char *conf_path = home_file(env("AWS_CONFIG_FILE"), ".aws/config");
    int r = RV_OK;

    memset(s, 0, sizeof(*s));
    *why = NULL;
    if ((cred_path && read_ini(cred_path, profile, false, cred_keys, cred, 3) != RV_OK) ||
        (conf_path && read_ini(conf_path, profile, true, conf_keys, conf, 5) != RV_OK)) {
        r = RV_E_NOMEM;
        goto out;
    }
    const char *ep = o->s3_endpoint ? o->s3_endpoint
                     : env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3")
                     : env("AWS_ENDPOINT_URL") ? env("AWS_ENDPOINT_URL")
                                               : conf[0];
    const char *region = o->s3_region ? o->s3_region
                         : env("AWS_REGION") ? env("AWS_REGION")
                         : env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION")
                                                     : conf[1];
    if ((ep && !(v[S_ENDPOINT] = strdup(ep))) || (region && !(v[S_REGION] = strdup(region)))) {
        r = RV_E_NOMEM;
        goto out;
    }
    if (!o->s3_no_sign) {
        /* The first source with a key pair wins, whole: a token from one
         * never goes with the keys of another. */
        const char *id = NULL, *secret = NULL, *token = NULL;
        if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY"))
            id = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY"),
            token = env("AWS_SESSION_TOKEN");
        else if (cred[0] && cred[1])
            id = cred[0], secret = cred[1], token = cred[2];
        else if (conf[2] && conf[3])
            id = conf[2], secret = conf[3], token = conf[4];
        if (!id) {
            *why = "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                   "put them in ~/.aws/credentials (AWS_PROFILE picks the profile); "
                   "--no-sign-request for a public bucket";
            r = RV_E_INVALID_ARGUMENT;
            goto out;
        }
        if (!(v[S_KEY_ID] = strdup(id)) || !(v[S_SECRET] = strdup(secret)) ||
            (token && !(v[S_TOKEN] = strdup(token)))) {
            r = RV_E_NOMEM;
            goto out;
        }
    }
    s->p = (rv_s3_params){
        .endpoint_url = v[S_ENDPOINT],
        .region = v[S_REGION],
        .path_style = o->s3_path_style,
        .access_key_id = v[S_KEY_ID],
        .secret_access_key = v[S_SECRET],
        .session_token = v[S_TOKEN],
    };
out:
    for (size_t i = 0; i < 5; i++) {
        if (conf[i])
            OPENSSL_cleanse(conf[i], strlen(conf[i]));
        free(conf[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        if (cred[i])
            OPENSSL_cleanse(cred[i], strlen(cred[i]));
        free(cred[i]);
    }
    free(cred_path);
    free(conf_path);
    if (r != RV_OK)
        rvc_s3_free(s);
    return r;
}

void rvc_s3_free(rvc_s3 *s) {
    for (size_t i = 0; i < 5; i++) {
        if (s->strings[i])
            OPENSSL_cleanse(s->strings[i], strlen(s->strings[i]));
        free(s->strings[i]);
        s->strings[i] = NULL;
    }
}
