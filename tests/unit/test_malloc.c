/* test_malloc.c — rv_tune_malloc: buffers the size of libcurl's receive
 * buffer, taken and freed as transfers start and end, come from the heap
 * and are reused. None is mapped on its own, the free top of the heap is
 * kept, and the rounds after the first fault in no new pages.
 *
 * Not built with the sanitizers (tests/unit/CMakeLists.txt): their
 * allocator replaces glibc's, whose thresholds this sets. */
#include <malloc.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "retriever/retriever.h"
#include "rv_test.h"

#define BUFFER_SIZE (256 * 1024 + 1) /* CURLOPT_BUFFERSIZE + 1, as libcurl takes it */
#define RUNNING 16                   /* transfers at once */
#define ROUNDS 200

static long minor_faults(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

int main(void) {
    rv_tune_malloc();

    void *buf[RUNNING];
    size_t mapped_most = 0;
    long faults_before = 0;
    for (int round = 0; round < ROUNDS; round++) {
        if (round == 1)
            faults_before = minor_faults();
        for (int i = 0; i < RUNNING; i++) {
            buf[i] = malloc(BUFFER_SIZE);
            if (!buf[i])
                abort();
            memset(buf[i], round, 64 * 1024); /* a 64 KiB object's body */
        }
        struct mallinfo2 mi = mallinfo2();
        if (mi.hblkhd > mapped_most)
            mapped_most = mi.hblkhd;
        /* Transfers end in another order than they started. */
        for (int i = 0; i < RUNNING; i++)
            free(buf[(i * 7 + round) % RUNNING]);
    }
    long faults = minor_faults() - faults_before;

    CHECK_EQ_U64(mapped_most, 0);
    CHECK(mallinfo2().keepcost >= (size_t)RUNNING * BUFFER_SIZE);
    CHECK(faults < 16);
    if (faults >= 16)
        fprintf(stderr, "    %ld pages faulted in after the first round\n", faults);
    return rv_test_result();
}
