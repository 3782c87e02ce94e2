/* input.h — download -i FILE: URLs read from a file in aria2's input-file
 * format.
 *
 *   # a comment (a line whose first non-blank character is '#')
 *   http://host/a.iso
 *     out=b.iso                  the file's name (relative to dir= or -d)
 *     dir=/srv/isos              the directory (else -d's, else the current)
 *     checksum=sha-256=HEX       its expected sha256 (64 hex digits)
 *     header=Name: value         a header for this URL only (repeatable)
 *   http://host/c.iso
 *
 * A URL line starts in the first column; option lines start with a blank
 * (space or tab) and belong to the URL above them; blank lines are
 * skipped. Everything else is an error naming FILE:LINE. The URLs read
 * are appended to those of the command line, in order.
 */
#ifndef RVC_INPUT_H
#define RVC_INPUT_H

#include <stdio.h>

#include "cli.h"

/* Read o->input_file ("-": in) into o: its URLs appended to o->urls, and
 * o->inputs set to o->n_urls entries (the command line's URLs get empty
 * ones). The strings read are kept in o->owned (freed by rvc_cmd_done).
 * RV_OK; RV_E_INVALID_ARGUMENT with *ret_error a malloc'd one-line message
 * ("FILE:LINE: what is wrong", or the file that cannot be read); RV_E_NOMEM.
 * A file with no URL, when the command line has none either, is an error. */
int rvc_input_read(rvc_download_opts *o, FILE *in, char **ret_error);

/* The per-URL fields for URL i: o->inputs[i], or NULL without -i. */
const rvc_input_item *rvc_input_item_of(const rvc_download_opts *o, size_t i);

/* URL i's expected sha256 (checksum= or --sha256), or NULL. */
const char *rvc_input_sha256(const rvc_download_opts *o, size_t i);

#endif
