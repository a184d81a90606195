// Library version and plugin ABI version.
//
// ORDINAUT_ABI_VERSION changes whenever a type that crosses the host/module
// boundary (Extension, SetupContext, Router, Request, Response, ...) changes
// layout or virtual table. A module built against another ABI version is
// refused at load with a message naming both versions. Every public type lives
// in the inline namespace ordinaut::abi_vN, so objects of two ABI versions
// cannot be mixed silently at link time either.
#pragma once

#include <cstdint>

#define ORDINAUT_VERSION_MAJOR 0          ///< version of these headers: major
#define ORDINAUT_VERSION_MINOR 1          ///< minor
#define ORDINAUT_VERSION_PATCH 0          ///< patch
#define ORDINAUT_VERSION_STRING "0.1.0"   ///< "MAJOR.MINOR.PATCH"

/// The extension ABI version of these headers (see the top of this file).
#define ORDINAUT_ABI_VERSION 1u

// The C++ runtime a module was built with must match the host's: both use the
// same std::string, std::function, exceptions and allocator.
#if defined(__GLIBCXX__)
/// The C++ standard library these headers are compiled with, e.g.
/// "libstdc++-20220819"; a module's must equal the host's.
#define ORDINAUT_STDLIB_ID "libstdc++-" ORDINAUT_STRINGIFY_(__GLIBCXX__)
#elif defined(_LIBCPP_VERSION)
#define ORDINAUT_STDLIB_ID "libc++-" ORDINAUT_STRINGIFY_(_LIBCPP_VERSION)
#else
#define ORDINAUT_STDLIB_ID "unknown-stdlib"
#endif
/// @cond INTERNAL
#define ORDINAUT_STRINGIFY_(x) ORDINAUT_STRINGIFY2_(x)
#define ORDINAUT_STRINGIFY2_(x) #x
/// @endcond

/// The inline namespace of every public type: abi_v{ORDINAUT_ABI_VERSION}.
#define ORDINAUT_ABI_NAMESPACE abi_v1

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Version of the library the caller is linked against, "MAJOR.MINOR.PATCH".
const char* library_version() noexcept;

/// ABI version the library was built with (ORDINAUT_ABI_VERSION at its build).
std::uint32_t library_abi_version() noexcept;

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
