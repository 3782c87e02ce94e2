/* remoteconn.h — what remote.c shares with remotecache.c inside the
 * daemon-mode module: the one connection path (socket choice, connect,
 * the failure line) every command uses, and the method paths. */
#ifndef RVC_REMOTECONN_H
#define RVC_REMOTECONN_H

#include <stdbool.h>
#include <stddef.h>

#include "report.h"
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

#endif
