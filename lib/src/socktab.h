/* socktab.h — the TCP sockets libcurl opened for one engine, found by their
 * addresses (internal).
 *
 * Why: a transfer sometimes needs its own socket, and libcurl 7.88 does not
 * say which one a running transfer uses (CURLINFO_ACTIVESOCKET answers only
 * after the transfer ends). What libcurl does give, before each request
 * (CURLOPT_PREREQFUNCTION), is the connection's addresses. So the table
 * records every socket libcurl opens and forgets it when libcurl closes it;
 * a transfer looks its socket up by the remote address and both ports.
 *
 * Ownership: libcurl owns the sockets; the table only names them. It must
 * outlive the multi handle (curl_multi_cleanup closes the last ones through
 * the table's close callback).
 */
#ifndef RV_SOCKTAB_H
#define RV_SOCKTAB_H

#include <curl/curl.h>

typedef struct rv_socktab rv_socktab;

/* NULL when out of memory. */
rv_socktab *rv_socktab_new(void);
void rv_socktab_free(rv_socktab *tab);

/* Make libcurl report the sockets it opens and closes for easy (set again
 * after every curl_easy_reset). A connection keeps the callbacks of the
 * handle that opened it, whichever transfer uses it later. */
void rv_socktab_attach(rv_socktab *tab, CURL *easy);

/* The connected socket with this remote address (as libcurl writes it:
 * "127.0.0.1", "::1") and these ports, or -1. */
int rv_socktab_find(rv_socktab *tab, const char *remote_ip, int remote_port, int local_port);

#endif
