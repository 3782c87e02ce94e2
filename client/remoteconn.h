/* remoteconn.h — what remote.c shares with remotecache.c inside the
 * daemon-mode module: the one connection path (socket choice, connect,
 * the failure line) every command uses, and the method paths. */
#ifndef RVC_REMOTECONN_H
#define RVC_REMOTECONN_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "s3conf.h"
#include "report.h"
#include "retriever/v1/retriever.pb-c.h"
#include "rpc.h"

/* Connect to the daemon download finds (daemonfind.h: --socket, the
 * environment, the system socket, the per-user one; started there when
 * autostart and none answers); NULL after a line on rp->err, with the exit
 * code in *ret_code. */
rvc_rpc *rvc_remote_connect(const char *socket_opt, bool autostart, rvc_report *rp,
                            int *ret_code);
/* The line for a failed call (as download's). */
void rvc_remote_print_status(rvc_report *rp, const char *method, const rvc_rpc_status *st);
/* "/retriever.v1.Retriever/<method>" into buf. */
void rvc_remote_method(const char *method, char *buf, size_t n);

/* A DownloadRequest for o's n URLs (download's, and cat's one) and the
 * storage it points into: every download option that travels with the
 * request (headers with the netrc's and -i's lines, sha256, limits,
 * timeouts, proxies, CA file, umask...) is set here, once for both. The
 * message borrows o's strings. */
typedef struct rvc_request {
    Retriever__V1__DownloadRequest msg;
    Retriever__V1__Umask umask;
    char *ca_file; /* --cacert's FILE made absolute (the daemon's cwd is not ours) */
    Retriever__V1__Source *sources;
    Retriever__V1__Source **source_ptrs;
    Retriever__V1__Header *headers; /* shared by every source */
    Retriever__V1__Header **header_ptrs;
    size_t n_headers;
    Retriever__V1__Header **own;        /* n entries: NULL, or source i's own lines:
                                           -i's header= lines, then the netrc's */
    size_t *n_own;                      /* n entries: how many in own[i] */
    Retriever__V1__Header ***auth_ptrs; /* n entries: NULL, or source i's headers
                                           (the shared ones, then own[i]) */
    size_t n_sources;
    /* s3:// sources: the caller's endpoint and credentials, read here as
     * the caller (s3conf.h) and sent with the request only. */
    Retriever__V1__S3Options s3msg;
    rvc_s3 s3;
    bool has_s3;
    const char *why; /* static: what rvc_remote_request's error means, or NULL */
} rvc_request;

/* Build *q (zeroed by the caller) for o's first n URLs; dest_of(ud, i) is
 * URL i's destination (NULL dest_of: none, the daemon keeps the object for
 * Read). RV_OK, or an error; rvc_remote_request_done(q) either way. */
int rvc_remote_request(const rvc_download_opts *o, size_t n,
                       const char *(*dest_of)(const void *ud, size_t i), const void *ud,
                       rvc_request *q);
void rvc_remote_request_done(rvc_request *q);

#endif
