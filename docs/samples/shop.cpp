// The shop module: everything is in shop.hpp; a module's source ends with the
// export macro, which defines its factory and the ABI symbols the host checks.
#include "shop.hpp"

ORDINAUT_EXTENSION(docs_sample::Shop)
