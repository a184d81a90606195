#include "http/static_files.hpp"

#include <sys/stat.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/strings.hpp"

namespace ordinaut::detail {

namespace {

bool is_within(const std::filesystem::path& root, const std::filesystem::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::optional<std::time_t> parse_http_date(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  if (strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
  return timegm(&tm);
}

}  // namespace

std::string_view content_type_for(std::string_view name) noexcept {
  auto dot = name.rfind('.');
  std::string_view ext = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  struct Pair {
    std::string_view ext, type;
  };
  static constexpr Pair kTypes[] = {
      {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
      {"map", "application/json"},          {"svg", "image/svg+xml"},
      {"png", "image/png"},                 {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},               {"gif", "image/gif"},
      {"webp", "image/webp"},               {"ico", "image/x-icon"},
      {"txt", "text/plain; charset=utf-8"}, {"md", "text/markdown; charset=utf-8"},
      {"woff", "font/woff"},                {"woff2", "font/woff2"},
      {"wasm", "application/wasm"},         {"xml", "application/xml"},
      {"pdf", "application/pdf"},
  };
  for (const auto& p : kTypes) {
    if (iequals(p.ext, ext)) return p.type;
  }
  return "application/octet-stream";
}

std::optional<Response> serve_static(const std::filesystem::path& root, std::string_view raw_path,
                                     const Request& request) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path canonical_root = fs::canonical(root, ec);
  if (ec) return std::nullopt;

  fs::path relative;
  for (std::string_view part : split_path_view(raw_path)) {
    auto decoded = percent_decode(part);
    if (!decoded) return std::nullopt;
    if (decoded->empty()) continue;  // "a//b" and the trailing slash
    if (*decoded == "." || *decoded == ".." ||
        decoded->find_first_of(std::string_view("/\\\0:", 4)) != std::string::npos) {
      return std::nullopt;
    }
    relative /= *decoded;
  }
  fs::path target = canonical_root / relative;
  if (fs::is_directory(target, ec)) target /= "index.html";
  const fs::path resolved = fs::canonical(target, ec);  // follows symlinks
  if (ec || !is_within(canonical_root, resolved) || !fs::is_regular_file(resolved, ec)) return std::nullopt;

  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0) return std::nullopt;
  const std::string etag = fmt::format("\"{:x}-{:x}{:09x}\"", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  const std::string last_modified = http_date(st.st_mtim.tv_sec);

  Response r;
  r.headers.set("ETag", etag);
  r.headers.set("Last-Modified", last_modified);
  r.headers.set("Cache-Control", "no-cache");
  r.headers.set("X-Content-Type-Options", "nosniff");
  std::string_view inm = request.header("If-None-Match");
  bool not_modified = false;
  if (!inm.empty()) {
    not_modified = inm == "*" || inm.find(etag) != std::string_view::npos;
  } else if (auto ims = request.header("If-Modified-Since"); !ims.empty()) {
    auto t = parse_http_date(ims);
    not_modified = t && st.st_mtim.tv_sec <= *t;
  }
  if (not_modified) {
    r.status = 304;
    return r;
  }
  std::ifstream in(resolved, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  r.status = 200;
  r.headers.set("Content-Type", std::string(content_type_for(resolved.filename().string())));
  r.body = buffer.str();
  return r;
}

}  // namespace ordinaut::detail
