// Router::match and percent_decode: any method and path against a fixed
// route table. Invariants: no crash; a match names an existing route; a
// captured "{path...}" never holds a NUL or a backslash (its segments cannot
// smuggle separators). Single-segment parameters are
// decoded as they are (%2F and %00 included), as documented.
#include <cstdint>
#include <string>

#include <ordinaut/http.hpp>

#include "fuzz_support.hpp"

namespace {

const ordinaut::Router& router() {
  static const ordinaut::Router r = [] {
    ordinaut::Router router;
    auto ok = [](ordinaut::Request&) { return ordinaut::Response::json_text(200, "{}"); };
    router.get("/", ok);
    router.get("/items/{id}", ok);
    router.post("/items/{id}", ok);
    router.del("/items/{id}/tags/{tag}", ok);
    router.get("/files/{path...}", ok);
    router.add("*", "/any/{x}", ok);
    router.get("/static/literal", ok);
    return router;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // First line: the method; the rest: the path.
  const std::size_t newline = input.find('\n');
  const std::string_view method = newline == std::string_view::npos ? "GET" : input.substr(0, newline);
  const std::string_view path = newline == std::string_view::npos ? input : input.substr(newline + 1);
  ordinaut::PathParams params;
  auto match = router().match(method, path, params);
  if (match.route_index >= 0) {
    fuzz::require(static_cast<std::size_t>(match.route_index) < router().routes().size(), "route index in range");
    const auto& route = router().routes()[static_cast<std::size_t>(match.route_index)];
    if (route.path.find("{path...}") != std::string::npos) {
      fuzz::require(params.size() == 1, "one capture");
      const std::string& value = params.front().second;
      fuzz::require(value.find('\0') == std::string::npos, "no NUL in a captured path");
      fuzz::require(value.find('\\') == std::string::npos, "no backslash in a captured path");
    }
  }
  (void)ordinaut::percent_decode(path);
  return 0;
}
