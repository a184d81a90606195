/* Forwards the installed layout <hiredis/read.h> to the flat source tree. */
#include "../../read.h"
