// A module claiming extension ABI 999: the host must refuse it before calling
// its factory, naming both ABI versions.
#include <cstdint>

#include <ordinaut/extension.hpp>

extern "C" __attribute__((visibility("default"))) std::uint32_t ordinaut_extension_abi_version() noexcept {
  return 999;
}

extern "C" __attribute__((visibility("default"))) const char* ordinaut_extension_stdlib() noexcept {
  return ORDINAUT_STDLIB_ID;
}

// Never called by a correct host; returning null makes a wrong host fail with
// a different message than the ABI one the test expects.
extern "C" __attribute__((visibility("default"))) ordinaut::Extension* ordinaut_get_extension() { return nullptr; }
