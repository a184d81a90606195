// A module that declares the right ABI but has no ordinaut_get_extension:
// loading it must fail with "missing_factory".
#include <cstdint>

#include <ordinaut/version.hpp>

extern "C" __attribute__((visibility("default"))) std::uint32_t ordinaut_extension_abi_version() noexcept {
  return ORDINAUT_ABI_VERSION;
}
