// parse_manifest: any bytes as extension.json. Invariants: no crash; an
// accepted manifest has a valid, unreserved id, a semantic version and a
// module path without "..", and every error names the file.
#include <cstdint>

#include <ordinaut/manifest.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::filesystem::path file = "/fuzz/ext/extension.json";
  auto m = ordinaut::parse_manifest(text, file);
  if (!m) {
    fuzz::require(m.error().file == file.string(), "errors name the file");
    fuzz::require(!m.error().message.empty(), "errors say why");
    return 0;
  }
  fuzz::require(ordinaut::is_extension_id(m->id), "id is valid");
  fuzz::require(!ordinaut::is_reserved_extension_id(m->id), "id is not reserved");
  fuzz::require(ordinaut::is_semantic_version(m->version), "version is semantic");
  fuzz::require(m->module.find("..") == std::string::npos && !m->module.empty() && m->module[0] != '/',
                "module stays relative");
  fuzz::require_strict_json("\"" + ordinaut::json::escape(m->name) + "\"", "name is valid UTF-8");
  return 0;
}
