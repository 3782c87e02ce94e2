/* plan.c — splitting an object into ranges. */
#include "plan.h"

void rv_plan_make(uint64_t size, uint64_t first_end, unsigned connections, uint64_t min_range,
                  uint64_t max_range, rv_plan *ret) {
    uint64_t rest = first_end < size ? size - first_end : 0, per = max_range;

    if (rest > 0) {
        per = rest / connections + (rest % connections != 0);
        if (per < min_range)
            per = min_range;
        if (per > max_range)
            per = max_range;
        /* At most RV_PLAN_MAX_RANGES - 1 ranges after the probe:
         * ceil(rest / per) <= max_later, i.e. per >= ceil(rest / max_later). */
        const uint64_t max_later = RV_PLAN_MAX_RANGES - 1;
        if ((rest - 1) / per >= max_later)
            per = (rest - 1) / max_later + 1;
    }
    *ret = (rv_plan){
        .first_end = first_end < size ? first_end : size,
        .size = size,
        .range_size = per,
        .n_ranges = 1 + (size_t)(rest / per + (rest % per != 0)),
    };
}

void rv_plan_range(const rv_plan *p, size_t i, uint64_t *start, uint64_t *end) {
    if (i == 0) {
        *start = 0;
        *end = p->first_end;
        return;
    }
    *start = p->first_end + (uint64_t)(i - 1) * p->range_size;
    *end = p->size - *start > p->range_size ? *start + p->range_size : p->size;
}
