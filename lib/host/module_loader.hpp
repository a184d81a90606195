// Loading extension modules with dlopen (internal).
#pragma once

#include <filesystem>

#include "ordinaut/extension.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

using RawFactory = Extension* (*)();

/// Opens `module` (never closed again: objects it created may outlive any
/// extension state) and checks its ABI version and C++ runtime against the
/// host's. Returns its factory. Error codes: "module_not_found",
/// "module_load_failed", "abi_mismatch", "missing_factory".
Result<RawFactory> open_module(const std::filesystem::path& module);

}  // namespace ordinaut::detail
