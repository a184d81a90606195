/* Forwards the installed layout <hiredis/async.h> to the flat source tree. */
#include "../../async.h"
