// Catalog: which extensions exist. Discovery from the built-in folders,
// ORDINAUT_EXT_PATHS and HostOptions::extension_paths, and linked-in
// extensions (ExtensionHost::add_linked and ORDINAUT_REGISTER_EXTENSION), each
// becoming one Entry; plus the discovery sources and errors /ext/status shows.
// Internal to the host.
//
// Owns: the entries (in discovery order) and the id index. It loads nothing
// and calls no extension code; manifests are read and validated here, and
// each module's ABI note is read from its file (abi_note.hpp).
//
// Thread safety: discover() runs once, inside ExtensionHost::start(), before
// any request; afterwards the set of entries and the index never change, so
// find() and entries() need no lock. The entries' own fields follow the rules
// in entry.hpp.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "host/entry.hpp"
#include "host/services.hpp"

namespace ordinaut::detail {

class Catalog {
 public:
  explicit Catalog(HostServices& services) : services_(services) {}

  // An extension linked in by the host program, with the grants and
  // eagerness it was given there (unset: from the environment's
  // ORDINAUT_EXT_ENTRY_GRANTS / _EAGER). REQUIRES: before discover().
  void add_linked(std::string id, ExtensionFactory factory, std::optional<CapabilitySet> approved,
                  std::optional<bool> eager);

  // Discovers every source in order: built-in folders, extension paths,
  // linked-in extensions (those added above, then the registered ones when
  // HostOptions::use_registered_extensions). A bad manifest, a duplicate or a
  // reserved id is a discovery error, never a failure of the whole host.
  // REQUIRES: called once.
  void discover();

  Entry* find(std::string_view id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
  }
  const std::vector<std::unique_ptr<Entry>>& entries() const { return entries_; }
  const std::vector<std::string>& sources() const { return sources_; }
  // (file, message) pairs, in the order they were found.
  const std::vector<std::pair<std::string, std::string>>& errors() const { return errors_; }

 private:
  void discover_folder(const std::filesystem::path& dir, const std::string& source);
  void discover_linked();
  std::vector<std::filesystem::path> extension_paths() const;
  // The entry as added, or null when it was refused (reserved or duplicate id).
  Entry* add_entry(std::unique_ptr<Entry> entry, const std::string& where);
  void check_module(Entry& entry, const std::string& where);
  void add_error(const std::string& file, const std::string& message);

  HostServices& services_;
  std::vector<std::pair<std::string, ExtensionFactory>> pending_linked_;
  std::map<std::string, std::optional<CapabilitySet>> linked_approved_;
  std::map<std::string, std::optional<bool>> linked_eager_;

  std::vector<std::unique_ptr<Entry>> entries_;       // discovery order
  std::map<std::string, Entry*, std::less<>> by_id_;  // fixed after discover()
  std::vector<std::string> sources_;
  std::vector<std::pair<std::string, std::string>> errors_;  // file, message
};

// The extensions that ORDINAUT_REGISTER_EXTENSION registered in this process.
std::vector<std::pair<std::string, ExtensionFactory>> registered_extensions();

}  // namespace ordinaut::detail
