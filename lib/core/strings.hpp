// Small string helpers shared inside the library (not installed).
#pragma once

#include <cctype>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ordinaut::detail {

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// "/a/b/" → {"a","b",""}; "/" → {""}... except that the root is {} so that
/// "/" and "" both mean the mount itself.
inline std::vector<std::string_view> split_path_view(std::string_view path) {
  std::vector<std::string_view> parts;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return parts;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = path.find('/', start);
    parts.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

inline std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  for (auto part : split_path_view(path)) out.emplace_back(part);
  return out;
}

inline std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t pos = text.find(sep, start);
    if (pos == std::string_view::npos) pos = text.size();
    out.emplace_back(text.substr(start, pos - start));
    start = pos + 1;
  }
  return out;
}

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Offset of the first byte of `text` that does not start a well-formed UTF-8
/// sequence (RFC 3629: no overlong forms, no surrogates, nothing above
/// U+10FFFF), or npos when all of `text` is valid UTF-8.
std::size_t first_invalid_utf8(std::string_view text) noexcept;

/// RFC 3339 UTC timestamp with milliseconds: "2026-11-26T12:00:00.123Z".
std::string rfc3339(std::int64_t epoch_ms);

}  // namespace ordinaut::detail
