/* SwiftPM needs one source file per C target; the module is header-only. */
#include "CEvplHeader.h"
