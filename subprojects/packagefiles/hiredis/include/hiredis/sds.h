/* Forwards the installed layout <hiredis/sds.h> to the flat source tree. */
#include "../../sds.h"
