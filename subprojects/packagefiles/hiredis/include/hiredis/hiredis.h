/* Forwards the installed layout <hiredis/hiredis.h> to the flat source tree. */
#include "../../hiredis.h"
