// A module whose ABI note names another C++ runtime at this host's ABI
// version: refused at discovery, naming both runtimes.
#include <ordinaut/extension.hpp>

ORDINAUT_ABI_NOTE(ORDINAUT_ABI_VERSION, "libc++-990000")
