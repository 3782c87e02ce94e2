/* plan.h — how an object is split into ranges (internal to lib/). Pure.
 *
 * The probe already covers [0, first_end). The rest, [first_end, size), is
 * cut into ranges of one size (the last one shorter):
 *   range = clamp(rest / connections, min_range, max_range)
 * so a mid-sized object spreads over all its connections while a large one
 * costs few requests; and, for an enormous object, large enough that there
 * are at most RV_PLAN_MAX_RANGES of them (the range table stays bounded).
 */
#ifndef RV_PLAN_H
#define RV_PLAN_H

#include <stddef.h>
#include <stdint.h>

#define RV_PLAN_MAX_RANGES ((size_t)1 << 20)

typedef struct rv_plan {
    uint64_t first_end;  /* the probe's range is [0, first_end) */
    uint64_t size;       /* the object's size */
    uint64_t range_size; /* every later range but the last has this size */
    size_t n_ranges;     /* ranges in all, the probe's included (>= 1) */
} rv_plan;

/* Plan an object of size bytes whose probe returned [0, first_end)
 * (first_end <= size; first_end == size means nothing is left). connections
 * >= 1, 1 <= min_range <= max_range. */
void rv_plan_make(uint64_t size, uint64_t first_end, unsigned connections, uint64_t min_range,
                  uint64_t max_range, rv_plan *ret);

/* Range i (0 <= i < n_ranges) as [*start, *end). */
void rv_plan_range(const rv_plan *p, size_t i, uint64_t *start, uint64_t *end);

#endif
