// Catalog: discovery of extensions (catalog.hpp).
#include "host/catalog.hpp"

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "host/abi_note.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {
namespace {

std::mutex& registered_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::pair<std::string, ExtensionFactory>>& registered_list() {
  static std::vector<std::pair<std::string, ExtensionFactory>> list;
  return list;
}

}  // namespace

void register_linked_extension(std::string id, ExtensionFactory factory) {
  std::lock_guard lock(registered_mutex());
  registered_list().emplace_back(std::move(id), std::move(factory));
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut

namespace ordinaut::detail {

std::vector<std::pair<std::string, ExtensionFactory>> registered_extensions() {
  std::lock_guard lock(registered_mutex());
  return registered_list();
}

void Catalog::add_linked(std::string id, ExtensionFactory factory, std::optional<CapabilitySet> approved,
                         std::optional<bool> eager) {
  linked_approved_[id] = approved;
  linked_eager_[id] = eager;
  pending_linked_.emplace_back(std::move(id), std::move(factory));
}

void Catalog::discover() {
  for (const auto& dir : services_.options.builtin_dirs) discover_folder(dir, "builtin");
  for (const auto& dir : extension_paths()) discover_folder(dir, "path");
  discover_linked();
}

void Catalog::add_error(const std::string& file, const std::string& message) {
  errors_.emplace_back(file, message);
  services_.logger.error("discovery_error", file.empty() ? message : file + ": " + message);
}

Entry* Catalog::add_entry(std::unique_ptr<Entry> entry, const std::string& where) {
  const Logger& logger = services_.logger;
  if (entry->id == "core" || entry->id == "host") {  // the host's event sources: an extension so named could forge them
    add_error(where, fmt::format("extension id '{}' is reserved for the host (source of its events); ignored", entry->id));
    logger.audit("extension_refused", fmt::format("extension id '{}' is reserved", entry->id),
                 fmt::format(R"({{"where":"{}"}})", json::escape(where)));
    return nullptr;
  }
  if (Entry* first = find(entry->id); first != nullptr) {
    std::string first_where = first->manifest ? first->manifest->file.string() : "linked into the program";
    add_error(where, fmt::format("duplicate extension id '{}': already discovered at {}; {} is ignored", entry->id,
                                 first_where, where));
    logger.audit("extension_refused", fmt::format("duplicate extension id '{}'", entry->id),
                 fmt::format(R"({{"first":"{}","second":"{}"}})", json::escape(first_where), json::escape(where)));
    return nullptr;
  }
  if (!entry->enabled) {
    entry->state.store(ExtensionState::disabled);
    entry->state_reason = "its manifest says \"enabled\": false";
  }
  Entry* added = entry.get();
  by_id_.emplace(entry->id, added);
  entries_.push_back(std::move(entry));
  return added;
}

// The module's ABI note, read from the file without loading it: a module of
// another ABI or C++ runtime, without the note, or no ELF shared object is a
// discovery error, and its extension is in `error` (phase "discovery") from
// the start, lazy or eager. A missing module file is left to the loader,
// which names it on the first load (so is one outside its folder: reading
// its headers runs nothing, and the loader refuses it before dlopen).
void Catalog::check_module(Entry& entry, const std::string& where) {
  auto abi = check_module_abi(entry.manifest->dir / entry.manifest->module);
  if (abi || abi.error().code == "module_not_found") return;
  const Error& e = abi.error();
  add_error(where, e.message);
  services_.extension_logger(entry.id)
      .audit("extension_refused", e.message,
             fmt::format(R"({{"code":"{}","phase":"discovery"}})", json::escape(e.code)));
  if (entry.state.load() == ExtensionState::disabled) return;  // reported; enabling it loads and checks again
  {
    std::lock_guard lock(entry.info_mutex);
    entry.last_error = e.message;
    entry.error_phase = "discovery";
  }
  entry.state.store(ExtensionState::error);
}

void Catalog::discover_folder(const std::filesystem::path& dir, const std::string& source) {
  namespace fs = std::filesystem;
  std::error_code ec;
  sources_.push_back(fmt::format("{}:{}", source, dir.string()));
  if (!fs::is_directory(dir, ec)) {
    add_error(dir.string(), "extension path does not exist or is not a folder");
    return;
  }
  // An extension.json that exists but is no regular file (a folder, a FIFO,
  // a device, a dangling link) is a discovery error, never skipped silently:
  // reading a FIFO would block start-up, and the operator meant something.
  auto manifest_kind = [&](const fs::path& file) {
    const fs::file_status st = fs::status(file, ec);
    if (fs::is_regular_file(st)) return 1;
    if (fs::exists(st) || fs::is_symlink(fs::symlink_status(file, ec))) {
      add_error(file.string(), "extension.json is not a regular file (a folder, FIFO, device or dangling link); "
                               "the extension is not discovered");
      return -1;
    }
    return 0;
  };
  std::vector<fs::path> manifests;
  if (const int top = manifest_kind(dir / "extension.json"); top != 0) {
    if (top > 0) manifests.push_back(dir / "extension.json");
  } else {
    std::vector<fs::path> children;
    for (const auto& child : fs::directory_iterator(dir, ec)) {
      if (child.is_directory(ec)) children.push_back(child.path() / "extension.json");
    }
    std::sort(children.begin(), children.end());
    for (const auto& file : children) {
      if (manifest_kind(file) > 0) manifests.push_back(file);
    }
  }
  for (const auto& file : manifests) {
    auto manifest = load_manifest(file);
    if (!manifest) {
      add_error(file.string(), manifest.error().message);
      continue;
    }
    auto entry = std::make_unique<Entry>();
    entry->id = manifest->id;
    entry->source = source;
    entry->approved = manifest->grants;
    entry->eager = manifest->eager;
    entry->enabled = manifest->enabled;
    entry->manifest = std::move(manifest).value();
    if (Entry* added = add_entry(std::move(entry), file.string())) check_module(*added, file.string());
  }
}

std::vector<std::filesystem::path> Catalog::extension_paths() const {
  std::vector<std::filesystem::path> paths;
  if (services_.options.read_environment) {
    if (const char* v = std::getenv("ORDINAUT_EXT_PATHS"); v != nullptr) {
      for (const auto& p : split(v, ':')) {
        if (!trim(p).empty()) paths.emplace_back(std::string(trim(p)));
      }
    }
  }
  for (const auto& p : services_.options.extension_paths) paths.push_back(p);
  return paths;
}

void Catalog::discover_linked() {
  const HostOptions& options = services_.options;
  std::vector<std::pair<std::string, ExtensionFactory>> linked = pending_linked_;
  if (options.use_registered_extensions) {
    for (auto& r : registered_extensions()) linked.push_back(std::move(r));
  }
  if (!linked.empty()) sources_.emplace_back("linked");
  for (auto& [id, factory] : linked) {
    if (is_reserved_extension_id(id)) {
      add_error("linked:" + id, fmt::format("linked-in extension id '{}' is reserved for the host; ignored", id));
      continue;
    }
    if (!is_extension_id(id)) {
      add_error("linked:" + id, fmt::format("linked-in extension id '{}' is invalid: use [a-z][a-z0-9_]{{0,63}}", id));
      continue;
    }
    auto entry = std::make_unique<Entry>();
    entry->id = id;
    entry->source = "linked";
    entry->factory = factory;
    if (auto it = linked_approved_.find(id); it != linked_approved_.end() && it->second) {
      entry->approved = *it->second;
    } else if (options.entry_grants) {
      if (auto g = options.entry_grants->find(id); g != options.entry_grants->end()) {
        for (const auto& name : g->second) {
          if (auto c = parse_capability(name)) entry->approved.insert(*c);
        }
      }
    }
    if (auto it = linked_eager_.find(id); it != linked_eager_.end() && it->second) {
      entry->eager = *it->second;
    } else if (options.entry_eager) {
      if (auto e = options.entry_eager->find(id); e != options.entry_eager->end()) entry->eager = e->second;
    }
    add_entry(std::move(entry), "linked:" + id);
  }
}

}  // namespace ordinaut::detail
