/* CEvpl holds types only; SwiftPM needs one source file per C target. */
#include "CEvpl.h"

_Static_assert(sizeof(struct evpl_notify) == 32, "evpl_notify size");
_Static_assert(sizeof(struct evpl_iovec) == 24, "evpl_iovec size");
_Static_assert(sizeof(struct evpl_timer) == 32, "evpl_timer size");
_Static_assert(sizeof(struct evpl_deferral) == 24, "evpl_deferral size");
_Static_assert(sizeof(struct evpl_doorbell) == 48, "evpl_doorbell size");
