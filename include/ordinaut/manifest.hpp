// extension.json: the manifest shipped beside every extension module.
//
// A manifest is validated against the JSON Schema in lib/manifest.schema.json
// (also returned by manifest_schema()). Every error names the file, the JSON
// pointer and the reason, e.g.
//   "/srv/ext/hello/extension.json: /grants/1: "ROUTE" is not one of ROUTES, TOOLS, ..."
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/capability.hpp"
#include "ordinaut/prompts.hpp"
#include "ordinaut/resources.hpp"
#include "ordinaut/tools.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// What a manifest's "contributes" object declares: listed by the host before
/// the module is loaded, and checked against what the module registers when it
/// is (any difference is a load error naming it). The specs carry no functions.
struct Contributions {
  /// True when the manifest has "contributes": then all four lists are
  /// authoritative (a missing list declares none of that kind).
  bool present = false;
  std::vector<std::string> uri_schemes;  ///< schemes claimed for resource URIs
  std::vector<ToolSpec> tools;           ///< names expanded to "ext.{id}.{name}"
  std::vector<ResourceSpec> resources;                   ///< static resources
  std::vector<ResourceTemplateSpec> resource_templates;  ///< RFC 6570 URI templates
  std::vector<PromptSpec> prompts;       ///< names expanded to "ext.{id}.{name}"
};

/// A parsed and validated extension.json (see docs/writing-extensions.md).
struct Manifest {
  std::string id;           ///< [a-z][a-z0-9_]{0,63}
  std::string name;         ///< 1-200 characters
  std::string version;      ///< semantic version 2.0.0
  std::string description;  ///< "" when absent
  std::string module;       ///< module file, relative to the manifest's folder
  bool enabled = true;      ///< false: listed as disabled, never loaded
  bool eager = false;       ///< true: loaded at host start, not on first use
  CapabilitySet grants;     ///< capabilities the operator approves
  Contributions contributes;  ///< tools, resources and prompts listed before loading
  std::filesystem::path file;  ///< the extension.json this came from
  std::filesystem::path dir;   ///< its folder
};

/// Parses and validates manifest text. `file` is used in messages and to set
/// Manifest::file/dir. Error codes: "invalid_json", "invalid_manifest".
Result<Manifest> parse_manifest(std::string_view text, const std::filesystem::path& file);

/// Manifests larger than this are refused unread (ORDINAUT_MANIFEST_MAX_BYTES changes it).
inline constexpr std::size_t kDefaultManifestMaxBytes = 1024 * 1024;

/// Reads and parses `file`, which must be a regular file (or a symlink to one)
/// named extension.json of at most `max_bytes`. Adds error codes
/// "unreadable_manifest" (missing, unreadable, a folder, a FIFO, a socket, a
/// device or another name: discovery must report these, not skip them) and
/// "manifest_too_large" (names the limit). Never blocks on a FIFO.
Result<Manifest> load_manifest(const std::filesystem::path& file, std::size_t max_bytes);

/// load_manifest() with the limit from ORDINAUT_MANIFEST_MAX_BYTES (a whole
/// number of bytes; default kDefaultManifestMaxBytes). A malformed setting is
/// error "invalid_setting" naming the variable.
Result<Manifest> load_manifest(const std::filesystem::path& file);

/// The manifest JSON Schema text.
std::string_view manifest_schema();

/// True for a semantic version 2.0.0 string ("1.2.3", "1.0.0-rc.1+build.5").
bool is_semantic_version(std::string_view version) noexcept;

/// True for a well-formed extension id: [a-z][a-z0-9_]{0,63} (reserved ids
/// included: see is_reserved_extension_id()).
bool is_extension_id(std::string_view id) noexcept;

/// True for ids the host keeps for itself: "status", "core", "openapi.json",
/// "_admin" and anything starting with '_'. parse_manifest() refuses them with
/// pointer /id; the host must refuse them for linked-in extensions too.
bool is_reserved_extension_id(std::string_view id) noexcept;

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
