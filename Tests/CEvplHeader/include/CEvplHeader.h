/*
 * The generated public header as a C module, so that XCTests can
 * `import CEvplHeader` and call evpl_* exactly as C programs see them
 * (prototypes from include/evpl/evpl.h, not the engine's Swift signatures).
 */
#ifndef CEVPL_HEADER_H
#define CEVPL_HEADER_H

#include "../../../include/evpl/evpl.h"

#endif
