// A module built for extension ABI 999: its ABI note says 999 (and so do its
// exported functions). The host must refuse it at discovery, from the note,
// naming both ABI versions, and never dlopen it.
#include <cstdint>

#include <ordinaut/extension.hpp>

ORDINAUT_ABI_NOTE(999, ORDINAUT_STDLIB_ID)

extern "C" __attribute__((visibility("default"))) std::uint32_t ordinaut_extension_abi_version() noexcept {
  return 999;
}

extern "C" __attribute__((visibility("default"))) const char* ordinaut_extension_stdlib() noexcept {
  return ORDINAUT_STDLIB_ID;
}

// Never called by a correct host; returning null makes a wrong host fail with
// a different message than the ABI one the test expects.
extern "C" __attribute__((visibility("default"))) ordinaut::Extension* ordinaut_get_extension() { return nullptr; }
