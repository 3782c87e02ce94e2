/* test_plan.c — range planning: every plan tiles [0, size) exactly, ranges
 * respect the clamps, and the table stays bounded for enormous objects. */
#include "plan.h"
#include "rv_test.h"

#define MiB (1ull << 20)

/* The plan's ranges are contiguous, non-empty (but for a 0-byte object),
 * start at 0, end at size; later ranges but the last have range_size. */
static void check_tiles(const rv_plan *p) {
    uint64_t expect = 0;
    for (size_t i = 0; i < p->n_ranges; i++) {
        uint64_t s, e;
        rv_plan_range(p, i, &s, &e);
        CHECK_EQ_U64(s, expect);
        CHECK(e >= s);
        if (i > 0) {
            CHECK(e > s);
            if (i + 1 < p->n_ranges)
                CHECK_EQ_U64(e - s, p->range_size);
            else
                CHECK(e - s <= p->range_size);
        }
        expect = e;
    }
    CHECK_EQ_U64(expect, p->size);
}

static void test_shapes(void) {
    rv_plan p;

    /* Everything arrived with the probe. */
    rv_plan_make(65536, 65536, 16, MiB, 16 * MiB, &p);
    CHECK_EQ_U64(p.n_ranges, 1);
    check_tiles(&p);
    rv_plan_make(0, 0, 16, MiB, 16 * MiB, &p);
    CHECK_EQ_U64(p.n_ranges, 1);
    check_tiles(&p);

    /* Mid-sized: spread over the connections, at least min_range each. */
    rv_plan_make(10 * MiB, MiB, 16, MiB, 16 * MiB, &p);
    CHECK_EQ_U64(p.range_size, MiB);
    CHECK_EQ_U64(p.n_ranges, 10);
    check_tiles(&p);

    /* 1 GiB: the largest ranges, 64 of them after the probe. */
    rv_plan_make(1024 * MiB, MiB, 16, MiB, 16 * MiB, &p);
    CHECK_EQ_U64(p.range_size, 16 * MiB);
    CHECK_EQ_U64(p.n_ranges, 1 + 64);
    check_tiles(&p);

    /* Between the clamps: rest / connections, rounded up. */
    rv_plan_make(MiB + 100 * MiB, MiB, 4, MiB, 64 * MiB, &p);
    CHECK_EQ_U64(p.range_size, 25 * MiB);
    CHECK_EQ_U64(p.n_ranges, 5);
    check_tiles(&p);
    rv_plan_make(MiB + 100 * MiB + 1, MiB, 4, MiB, 64 * MiB, &p);
    CHECK_EQ_U64(p.range_size, 25 * MiB + 1);
    CHECK_EQ_U64(p.n_ranges, 5);
    check_tiles(&p);

    /* One connection: ranges of max_range. */
    rv_plan_make(100 * MiB, MiB, 1, MiB, 16 * MiB, &p);
    CHECK_EQ_U64(p.range_size, 16 * MiB);
    CHECK_EQ_U64(p.n_ranges, 1 + 7);
    check_tiles(&p);

    /* A probe that answered a shorter range than asked. */
    rv_plan_make(3 * MiB, 1000, 16, MiB, 16 * MiB, &p);
    check_tiles(&p);
}

static void test_bounds(void) {
    rv_plan p;

    /* Enormous objects: the table is bounded, ranges grow instead. */
    uint64_t sizes[] = {1ull << 62, (1ull << 44) + 12345, UINT64_MAX - 1};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rv_plan_make(sizes[i], MiB, 16, MiB, 16 * MiB, &p);
        CHECK(p.n_ranges <= RV_PLAN_MAX_RANGES);
        CHECK(p.range_size >= 16 * MiB);
        uint64_t s, e;
        rv_plan_range(&p, p.n_ranges - 1, &s, &e);
        CHECK_EQ_U64(e, sizes[i]);
        CHECK(e > s);
        rv_plan_range(&p, p.n_ranges - 2, &s, &e);
        CHECK_EQ_U64(e - s, p.range_size);
    }

    /* Exhaustive small cases against the tiling invariant. */
    for (uint64_t size = 0; size <= 40; size++)
        for (uint64_t first = 0; first <= size; first++)
            for (unsigned conns = 1; conns <= 5; conns++)
                for (uint64_t minr = 1; minr <= 4; minr++) {
                    rv_plan_make(size, first, conns, minr, minr + 3, &p);
                    check_tiles(&p);
                    CHECK(p.range_size >= minr && p.range_size <= minr + 3);
                }
}

int main(void) {
    test_shapes();
    test_bounds();
    return rv_test_result();
}
