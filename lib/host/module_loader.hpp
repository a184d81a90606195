// Loading extension modules with dlopen (internal).
#pragma once

#include <filesystem>

#include "ordinaut/extension.hpp"
#include "ordinaut/manifest.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

using RawFactory = Extension* (*)();

/// Opens `module` (never closed again: objects it created may outlive any
/// extension state) and checks its ABI version and C++ runtime against the
/// host's: first its ABI note, read from the file before dlopen
/// (check_module_abi, abi_note.hpp), then the functions it exports. Returns
/// its factory. Error codes: "module_not_found", "module_invalid",
/// "abi_note_missing", "module_load_failed", "abi_mismatch", "missing_factory".
Result<RawFactory> open_module(const std::filesystem::path& module);

/// The module file a manifest names, resolved (symlinks followed, canonical),
/// checked to be a regular file inside the manifest's folder (itself
/// canonical). Error codes: "module_not_found", "module_outside_folder" (its
/// message names both paths). Nothing is loaded.
Result<std::filesystem::path> resolve_module_path(const Manifest& manifest);

/// resolve_module_path() then open_module() of the resolved path: a module
/// outside its folder is refused before dlopen runs any of its constructors.
Result<RawFactory> open_manifest_module(const Manifest& manifest);

}  // namespace ordinaut::detail
