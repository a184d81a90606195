/* Forwards the installed layout <hiredis/alloc.h> to the flat source tree. */
#include "../../alloc.h"
