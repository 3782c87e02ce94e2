/* s3conf.h — where and as whom retrieverctl fetches s3:// URLs: the
 * options, then the environment and the AWS shared files, in the order the
 * AWS tools use (docs/sources.md). */
#ifndef RVC_S3CONF_H
#define RVC_S3CONF_H

#include <retriever/retriever.h>

#include "cli.h"

/* An owned rv_s3_params (free with rvc_s3_free: the secret is cleansed). */
typedef struct rvc_s3 {
    rv_s3_params p;
    char *strings[5]; /* what p points at */
} rvc_s3;

/* Fill s from o's S3 options, the environment (AWS_*), and the files
 * AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and AWS_CONFIG_FILE
 * (~/.aws/config) for AWS_PROFILE (default "default"). RV_OK; else an
 * RV_E_* code and *why (static text) says what is missing. */
int rvc_s3_load(const rvc_download_opts *o, rvc_s3 *s, const char **why);
void rvc_s3_free(rvc_s3 *s);

#endif
