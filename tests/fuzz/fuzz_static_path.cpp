// serve_static: any raw path against a fixed static/ folder with a file, a
// subfolder, and symlinks inside and outside. Invariant: nothing outside the
// root is ever served (the outside file's marker never appears in a body).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "fuzz_support.hpp"
#include "http/static_files.hpp"

namespace {

constexpr std::string_view kSecret = "OUTSIDE-THE-ROOT";

const std::filesystem::path& root() {
  static const std::filesystem::path r = [] {
    namespace fs = std::filesystem;
    const fs::path base = fs::temp_directory_path() / ("ordinaut-fuzz-static-" + std::to_string(::getpid()));
    fs::create_directories(base / "static" / "sub");
    std::ofstream(base / "secret.txt") << kSecret;
    std::ofstream(base / "static" / "index.html") << "<p>index</p>";
    std::ofstream(base / "static" / "sub" / "a.css") << "a{}";
    std::error_code ec;
    fs::create_symlink(base / "secret.txt", base / "static" / "leak.txt", ec);
    fs::create_directory_symlink(base, base / "static" / "up", ec);
    fs::create_symlink("sub/a.css", base / "static" / "inside.css", ec);
    return base / "static";
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  ordinaut::Request request;
  request.method = "GET";
  request.path = std::string(raw);
  auto response = ordinaut::detail::serve_static(root(), raw, request);
  if (response) {
    fuzz::require(response->body.find(kSecret) == std::string::npos, "a file outside the root was served");
  }
  (void)ordinaut::detail::content_type_for(raw);
  return 0;
}
