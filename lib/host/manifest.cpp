#include "ordinaut/manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

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

std::string str(const JsonValue& object, const char* key) {
  auto v = json::get_string(object, key);
  return v ? std::string(*v) : std::string{};
}

// Reads "contributes" and checks every entry with the same rules the
// registries apply at run time (a scratch registry per kind), so a manifest
// that would fail at load fails at discovery, naming the JSON pointer.
Result<Contributions> parse_contributions(const JsonValue& c, const std::string& id, const std::filesystem::path& file) {
  Contributions out;
  out.present = true;
  ToolRegistry tools;
  ResourceRegistry resources;
  PromptRegistry prompts;
  auto fail = [&](std::string pointer, const Error& e) {
    return file_error("invalid_manifest", fmt::format("{}: {}", pointer, e.message), file, pointer);
  };
  if (c.HasMember("uriSchemes")) {
    const auto& list = c["uriSchemes"].GetArray();
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      std::string scheme = list[i].GetString();
      if (auto r = resources.claim_scheme(scheme, id); !r) return fail(fmt::format("/contributes/uriSchemes/{}", i), r.error());
      out.uri_schemes.push_back(std::move(scheme));
    }
  }
  if (c.HasMember("tools")) {
    const auto& list = c["tools"].GetArray();
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const JsonValue& t = list[i];
      ToolSpec spec{.name = fmt::format("ext.{}.{}", id, t["name"].GetString()),
                    .title = str(t, "title"),
                    .description = str(t, "description"),
                    .input_schema = json::dump(t["inputSchema"]),
                    .output_schema = t.HasMember("outputSchema") ? json::dump(t["outputSchema"]) : std::string{},
                    .function = {},
                    .annotations = t.HasMember("annotations") ? json::dump(t["annotations"]) : std::string{}};
      if (auto r = tools.declare(spec, id); !r) return fail(fmt::format("/contributes/tools/{}", i), r.error());
      out.tools.push_back(std::move(spec));
    }
  }
  if (c.HasMember("resources")) {
    const auto& list = c["resources"].GetArray();
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const JsonValue& r = list[i];
      ResourceSpec spec{.uri = str(r, "uri"),
                        .name = str(r, "name"),
                        .title = str(r, "title"),
                        .description = str(r, "description"),
                        .mime_type = str(r, "mimeType"),
                        .read = {}};
      if (spec.uri.find('{') != std::string::npos) {
        return fail(fmt::format("/contributes/resources/{}/uri", i),
                    make_error("invalid_resource", "a URI with {variables} belongs in resourceTemplates"));
      }
      if (auto ok = resources.declare(spec, id); !ok) return fail(fmt::format("/contributes/resources/{}", i), ok.error());
      out.resources.push_back(std::move(spec));
    }
  }
  if (c.HasMember("resourceTemplates")) {
    const auto& list = c["resourceTemplates"].GetArray();
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const JsonValue& r = list[i];
      ResourceTemplateSpec spec{.uri_template = str(r, "uriTemplate"),
                                .name = str(r, "name"),
                                .title = str(r, "title"),
                                .description = str(r, "description"),
                                .mime_type = str(r, "mimeType"),
                                .read = {},
                                .complete = {}};
      if (auto ok = resources.declare_template(spec, id); !ok) {
        return fail(fmt::format("/contributes/resourceTemplates/{}", i), ok.error());
      }
      out.resource_templates.push_back(std::move(spec));
    }
  }
  if (c.HasMember("prompts")) {
    const auto& list = c["prompts"].GetArray();
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const JsonValue& p = list[i];
      PromptSpec spec{.name = fmt::format("ext.{}.{}", id, p["name"].GetString()),
                      .title = str(p, "title"),
                      .description = str(p, "description"),
                      .arguments = {},
                      .get = {},
                      .complete = {}};
      if (p.HasMember("arguments")) {
        for (const JsonValue& a : p["arguments"].GetArray()) {
          spec.arguments.push_back(PromptArgument{str(a, "name"), str(a, "title"), str(a, "description"),
                                                  a.HasMember("required") && a["required"].GetBool()});
        }
      }
      if (auto ok = prompts.declare(spec, id); !ok) return fail(fmt::format("/contributes/prompts/{}", i), ok.error());
      out.prompts.push_back(std::move(spec));
    }
  }
  return out;
}

}  // namespace

bool is_reserved_extension_id(std::string_view id) noexcept {
  // Paths the host serves itself under /ext/ (status, openapi.json, _admin),
  // plus names kept for the host. The id pattern already excludes '_' first
  // and '.'.
  return id == "status" || id == "core" || id == "host" || id == "openapi.json" || id == "_admin" || id.starts_with('_');
}

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
    Error e = file_error("invalid_json", "not valid JSON: " + doc.error().message, file);
    e.offset = doc.error().offset;
    e.line = doc.error().line;
    e.column = doc.error().column;
    return e;
  }
  if (auto valid = compiled_manifest_schema().validate(*doc); !valid) {
    return file_error("invalid_manifest", valid.error().message, file, valid.error().pointer);
  }
  const Json& d = *doc;
  Manifest m;
  m.id = d["id"].GetString();
  if (is_reserved_extension_id(m.id)) {
    return file_error("invalid_manifest",
                      fmt::format("/id: \"{}\" is reserved for the host's own paths under /ext/", m.id), file, "/id");
  }
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
  if (d.HasMember("contributes")) {
    auto contributes = parse_contributions(d["contributes"], m.id, file);
    if (!contributes) return contributes.error();
    m.contributes = std::move(contributes).value();
  }
  m.file = file;
  m.dir = file.parent_path();
  return m;
}

namespace {

Result<std::size_t> manifest_size_limit() {
  const char* v = std::getenv("ORDINAUT_MANIFEST_MAX_BYTES");
  if (v == nullptr || *v == '\0') return kDefaultManifestMaxBytes;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (*end != '\0' || errno != 0 || n == 0 || *v == '-') {
    return make_error("invalid_setting",
                      fmt::format("ORDINAUT_MANIFEST_MAX_BYTES=\"{}\" must be a whole number of bytes above 0", v));
  }
  return static_cast<std::size_t>(n);
}

}  // namespace

Result<Manifest> load_manifest(const std::filesystem::path& file) {
  auto limit = manifest_size_limit();
  if (!limit) return file_error(limit.error().code, limit.error().message, file);
  return load_manifest(file, *limit);
}

Result<Manifest> load_manifest(const std::filesystem::path& file, std::size_t max_bytes) {
  if (file.filename() != "extension.json") {
    return file_error("unreadable_manifest", "a manifest file must be named extension.json", file);
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer. fstat on the open
  // descriptor: what is checked is what is read.
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return file_error("unreadable_manifest", fmt::format("cannot read: {}", std::strerror(errno)), file);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return file_error("unreadable_manifest", fmt::format("cannot read: {}", std::strerror(errno)), file);
  }
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a folder"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "a special file";
    return file_error("unreadable_manifest", fmt::format("is {}, not a regular file", kind), file);
  }
  auto too_large = [&] {
    return file_error("manifest_too_large",
                      fmt::format("is larger than {} bytes, the limit for a manifest (ORDINAUT_MANIFEST_MAX_BYTES)",
                                  max_bytes),
                      file);
  };
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) return too_large();
  // Read at most one byte past the limit: the file may have grown since fstat.
  std::string text;
  char chunk[16384];
  while (text.size() <= max_bytes) {
    const ssize_t n = ::read(fd, chunk, std::min(sizeof chunk, max_bytes + 1 - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return file_error("unreadable_manifest", fmt::format("cannot read: {}", std::strerror(errno)), file);
    if (n == 0) break;
    text.append(chunk, static_cast<std::size_t>(n));
  }
  const std::size_t got = text.size();
  if (got > max_bytes) return too_large();
  return parse_manifest(text, file);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
