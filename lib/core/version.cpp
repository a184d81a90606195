// The library's version and extension ABI version (include/ordinaut/version.hpp).
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* library_version() noexcept { return ORDINAUT_VERSION_STRING; }
std::uint32_t library_abi_version() noexcept { return ORDINAUT_ABI_VERSION; }

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
