#include "ordinaut/manifest.hpp"

#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "ordinaut/json.hpp"

namespace ordinaut::detail {
extern const std::string_view kManifestSchema;  // lib/host/manifest.schema.json, embedded at build
}

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

std::string_view manifest_schema() { return detail::kManifestSchema; }

namespace {

const JsonSchema& compiled_manifest_schema() {
  static const JsonSchema schema = [] {
    auto s = JsonSchema::compile(detail::kManifestSchema);
    if (!s) std::abort();  // the schema ships with the library; a broken one is a build defect
    return std::move(s).value();
  }();
  return schema;
}

Error file_error(std::string code, std::string message, const std::filesystem::path& file, std::string pointer = {}) {
  Error e = make_error(std::move(code), std::move(message));
  e.file = file.string();
  e.pointer = std::move(pointer);
  return e;
}

}  // namespace

bool is_extension_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 64 || !(id[0] >= 'a' && id[0] <= 'z')) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool is_semantic_version(std::string_view v) noexcept {
  // MAJOR.MINOR.PATCH, no leading zeros, optional -prerelease and +build.
  auto number = [&](std::size_t& i) {
    std::size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    if (i == start) return false;
    return !(v[start] == '0' && i - start > 1);
  };
  auto idents = [&](std::size_t& i) {
    bool any = false;
    while (true) {
      std::size_t start = i;
      while (i < v.size() && (std::isalnum(static_cast<unsigned char>(v[i])) || v[i] == '-')) ++i;
      if (i == start) return false;
      any = true;
      if (i < v.size() && v[i] == '.') {
        ++i;
        continue;
      }
      return any;
    }
  };
  std::size_t i = 0;
  if (!number(i) || i >= v.size() || v[i++] != '.') return false;
  if (!number(i) || i >= v.size() || v[i++] != '.') return false;
  if (!number(i)) return false;
  if (i < v.size() && v[i] == '-') {
    ++i;
    if (!idents(i)) return false;
  }
  if (i < v.size() && v[i] == '+') {
    ++i;
    if (!idents(i)) return false;
  }
  return i == v.size();
}

Result<Manifest> parse_manifest(std::string_view text, const std::filesystem::path& file) {
  auto doc = json::parse(text);
  if (!doc) {
    return file_error("invalid_json", "not valid JSON: " + doc.error().message, file);
  }
  if (auto valid = compiled_manifest_schema().validate(*doc); !valid) {
    return file_error("invalid_manifest", valid.error().message, file, valid.error().pointer);
  }
  const Json& d = *doc;
  Manifest m;
  m.id = d["id"].GetString();
  m.name = d["name"].GetString();
  m.version = d["version"].GetString();
  m.module = d["module"].GetString();
  if (auto desc = json::get_string(d, "description")) m.description = *desc;
  if (d.HasMember("enabled")) m.enabled = d["enabled"].GetBool();
  if (d.HasMember("eager")) m.eager = d["eager"].GetBool();
  if (d.HasMember("grants")) {
    for (auto& g : d["grants"].GetArray()) m.grants.insert(*parse_capability(g.GetString()));
  }
  if (m.module.find("..") != std::string::npos) {
    return file_error("invalid_manifest", fmt::format("/module: \"{}\" must not contain \"..\"", m.module), file,
                      "/module");
  }
  m.file = file;
  m.dir = file.parent_path();
  return m;
}

Result<Manifest> load_manifest(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return file_error("unreadable_manifest", fmt::format("cannot read: {}", std::strerror(errno)), file);
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return parse_manifest(buffer.str(), file);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
