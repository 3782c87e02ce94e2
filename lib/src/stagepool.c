/* stagepool.c — the engine's pool of free stages (stage.c): giving a
 * stage back. Apart from stage.c so that outfile.c (whose digest returns
 * the stages it hashed from) and stage.c (which writes into outfile.c's
 * file) share it without calling each other: stage.c lies above outfile.c,
 * and this below both. */
#include "engine_int.h"

void rv_stage_release(rv_engine *e, rv_stage *list) {
    while (list) {
        rv_stage *s = list;
        list = s->next_free;
        e->held_stages--;
        rv_stage_put(e, s);
    }
}

void rv_stage_release_held(rv_object *o) {
    rv_stage_release(o->engine, o->held);
    o->held = NULL;
}
