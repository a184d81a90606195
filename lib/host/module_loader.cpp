#include "host/module_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "host/abi_note.hpp"

namespace ordinaut::detail {

Result<RawFactory> open_module(const std::filesystem::path& module) {
  static std::mutex mutex;
  static std::map<std::string, void*> opened;  // never dlclose'd
  std::error_code ec;
  if (!std::filesystem::is_regular_file(module, ec)) {
    return make_error("module_not_found", fmt::format("module file {} does not exist", module.string()));
  }
  std::lock_guard lock(mutex);
  void* handle = nullptr;
  if (auto it = opened.find(module.string()); it != opened.end()) {
    handle = it->second;
  } else {
    // The ABI note first: dlopen would run the module's constructors, and a
    // module of another ABI fails there with only an undefined symbol.
    if (auto abi = check_module_abi(module); !abi) return abi.error();
    handle = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      return make_error("module_load_failed",
                        fmt::format("cannot load module {}: {}", module.string(), why != nullptr ? why : "unknown"));
    }
    opened.emplace(module.string(), handle);
  }
  ::dlerror();
  auto abi = reinterpret_cast<std::uint32_t (*)()>(::dlsym(handle, ORDINAUT_ENTRY_ABI_SYMBOL));
  if (abi == nullptr) {
    return make_error("missing_factory",
                      fmt::format("module {} exports no {}: it was not built with ORDINAUT_EXTENSION(...)",
                                  module.string(), ORDINAUT_ENTRY_ABI_SYMBOL));
  }
  if (abi() != ORDINAUT_ABI_VERSION) {
    return make_error("abi_mismatch",
                      fmt::format("module {} was built for extension ABI version {}, this host provides ABI "
                                  "version {}; rebuild the module against this host's headers",
                                  module.string(), abi(), ORDINAUT_ABI_VERSION));
  }
  if (auto stdlib = reinterpret_cast<const char* (*)()>(::dlsym(handle, ORDINAUT_ENTRY_STDLIB_SYMBOL))) {
    if (std::strcmp(stdlib(), ORDINAUT_STDLIB_ID) != 0) {
      return make_error("abi_mismatch", fmt::format("module {} was built with C++ runtime {}, this host uses {}",
                                                    module.string(), stdlib(), ORDINAUT_STDLIB_ID));
    }
  }
  auto factory = reinterpret_cast<RawFactory>(::dlsym(handle, ORDINAUT_ENTRY_FACTORY_SYMBOL));
  if (factory == nullptr) {
    return make_error("missing_factory",
                      fmt::format("module {} has no factory {}: end its source with ORDINAUT_EXTENSION(YourClass)",
                                  module.string(), ORDINAUT_ENTRY_FACTORY_SYMBOL));
  }
  return factory;
}

Result<std::filesystem::path> resolve_module_path(const Manifest& manifest) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path folder = fs::canonical(manifest.dir, ec);
  if (ec) {
    return make_error("module_not_found",
                      fmt::format("extension folder {} cannot be resolved: {}", manifest.dir.string(), ec.message()));
  }
  const fs::path given = manifest.dir / manifest.module;
  const fs::path module = fs::canonical(given, ec);
  if (ec) {
    return make_error("module_not_found", fmt::format("module file {} does not exist", given.string()));
  }
  // Inside: the folder's path is a prefix of the module's, component by component.
  auto [folder_end, module_at] = std::mismatch(folder.begin(), folder.end(), module.begin(), module.end());
  if (folder_end != folder.end() || module_at == module.end()) {
    return make_error("module_outside_folder",
                      fmt::format("module {} resolves to {}, outside the extension folder {}; refused before loading",
                                  given.string(), module.string(), folder.string()));
  }
  if (!fs::is_regular_file(module, ec)) {
    return make_error("module_not_found", fmt::format("module file {} is not a regular file", given.string()));
  }
  return module;
}

Result<RawFactory> open_manifest_module(const Manifest& manifest) {
  auto path = resolve_module_path(manifest);
  if (!path) return path.error();
  return open_module(*path);
}

}  // namespace ordinaut::detail
