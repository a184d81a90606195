// Serving an extension's static/ folder (internal).
#pragma once

#include <filesystem>
#include <string_view>

#include "ordinaut/http.hpp"

namespace ordinaut::detail {

/// Serves `raw_path` (percent-encoded, relative to the mount) from `root`.
/// Returns nullopt when no file answers, so the caller can give its own 404.
/// Never serves a path outside `root`: "..", encoded separators, backslashes,
/// NUL and symlinks leading out are all refused.
std::optional<Response> serve_static(const std::filesystem::path& root, std::string_view raw_path,
                                     const Request& request);

/// Content type for a file name, by extension.
std::string_view content_type_for(std::string_view filename) noexcept;

}  // namespace ordinaut::detail
