// A module that declares the right ABI (note and function) but has no
// ordinaut_get_extension: loading it must fail with "missing_factory".
#include <cstdint>

#include <ordinaut/extension.hpp>

ORDINAUT_ABI_NOTE(ORDINAUT_ABI_VERSION, ORDINAUT_STDLIB_ID)

extern "C" __attribute__((visibility("default"))) std::uint32_t ordinaut_extension_abi_version() noexcept {
  return ORDINAUT_ABI_VERSION;
}
