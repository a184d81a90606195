// A module with the right entry points written by hand but no ABI note (as
// one built before the note existed): refused at discovery, never loaded.
#include <cstdint>

#include <ordinaut/extension.hpp>

extern "C" __attribute__((visibility("default"))) std::uint32_t ordinaut_extension_abi_version() noexcept {
  return ORDINAUT_ABI_VERSION;
}

extern "C" __attribute__((visibility("default"))) const char* ordinaut_extension_stdlib() noexcept {
  return ORDINAUT_STDLIB_ID;
}

extern "C" __attribute__((visibility("default"))) ordinaut::Extension* ordinaut_get_extension() { return nullptr; }
