/* fuzz_request_small.c — the other decoders, one per input: the first
 * byte picks StatusRequest, CancelRequest, WatchRequest, ReadRequest,
 * ListRequest, StatsRequest, PingRequest or CacheRemoveRequest (modulo 8),
 * the rest is the message.
 *
 * Properties: an accepted job id is 32 lower-case hex digits; an accepted
 * Read is within its limits; an accepted List has only the five state
 * bits and a limit in 1..RVD_REQ_LIST_MAX; an accepted CacheRemove is all
 * with no URL or 1..RVD_REQ_SOURCES_MAX non-empty URLs within
 * RVD_REQ_URL_MAX; a refusal is -EINVAL with a
 * sentence and leaves the output untouched. */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "request.h"

static bool job_id_ok(const char *id) {
    if (strlen(id) != RVD_JOB_ID_LEN)
        return false;
    for (; *id; id++)
        if (!((*id >= '0' && *id <= '9') || (*id >= 'a' && *id <= 'f')))
            return false;
    return true;
}

static void refused(int r, char *err) {
    FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
    FUZZ_CHECK(r == -ENOMEM || (err && *err));
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    unsigned which = data[0] % 8;
    data++;
    size--;
    char *err = NULL;
    int r;

    if (which < 2) {
        static const rvd_id_request kinds[] = {RVD_REQ_STATUS, RVD_REQ_CANCEL};
        char id[RVD_JOB_ID_LEN + 1] = "untouched";
        r = rvd_request_job_id(kinds[which], data, size, id, &err);
        if (r == 0)
            FUZZ_CHECK(job_id_ok(id) && !err);
        else
            FUZZ_CHECK(strcmp(id, "untouched") == 0);
    } else if (which == 2) {
        rvd_watch_req w = {.job_id = "untouched", .batch_events = false};
        r = rvd_request_watch(data, size, &w, &err);
        if (r == 0)
            FUZZ_CHECK(job_id_ok(w.job_id) && !err);
        else
            FUZZ_CHECK(strcmp(w.job_id, "untouched") == 0 && !w.batch_events);
    } else if (which == 3) {
        rvd_read_req rd = {.object_index = 4242};
        r = rvd_request_read(data, size, &rd, &err);
        if (r == 0)
            FUZZ_CHECK(job_id_ok(rd.job_id) && rd.object_index < RVD_REQ_SOURCES_MAX &&
                       rd.offset <= INT64_MAX && !err);
        else
            FUZZ_CHECK(rd.object_index == 4242 && rd.job_id[0] == '\0');
    } else if (which == 4) {
        rvd_list_req ls = {.states = 1, .limit = 0};
        r = rvd_request_list(data, size, &ls, &err);
        if (r == 0)
            FUZZ_CHECK((ls.states & ~(uint32_t)0x3e) == 0 && ls.limit >= 1 &&
                       ls.limit <= RVD_REQ_LIST_MAX && !err);
        else
            FUZZ_CHECK(ls.states == 1 && ls.limit == 0);
    } else if (which == 7) {
        rvd_cache_remove_req cr = {.n_urls = 4242};
        r = rvd_request_cache_remove(data, size, &cr, &err);
        if (r == 0) {
            FUZZ_CHECK(!err && (cr.all ? cr.n_urls == 0
                                       : cr.n_urls >= 1 && cr.n_urls <= RVD_REQ_SOURCES_MAX));
            for (size_t i = 0; i < cr.n_urls; i++)
                FUZZ_CHECK(cr.urls[i][0] && strlen(cr.urls[i]) <= RVD_REQ_URL_MAX);
            rvd_cache_remove_req_clear(&cr);
        } else {
            FUZZ_CHECK(cr.n_urls == 4242 && !cr.urls);
        }
    } else {
        r = rvd_request_empty(which == 5 ? RVD_REQ_STATS : RVD_REQ_PING, data, size, &err);
        if (r == 0)
            FUZZ_CHECK(!err);
    }
    if (r != 0)
        refused(r, err);
    return 0;
}
