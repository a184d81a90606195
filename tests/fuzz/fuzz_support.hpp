// Shared checks for the libFuzzer targets (built by tools/fuzz.sh).
#pragma once

#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include <ordinaut/json.hpp>

namespace fuzz {

/// Aborts (a libFuzzer finding) with `why` when `condition` is false.
inline void require(bool condition, const char* why) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", why);
    std::abort();
  }
}

/// Text we send must be JSON that our own strict parse accepts: valid UTF-8,
/// no duplicate keys, bounded depth.
inline void require_strict_json(std::string_view text, const char* what) {
  auto doc = ordinaut::json::parse(text);
  if (!doc) std::fprintf(stderr, "%s: %s\n", what, doc.error().message.c_str());
  require(doc.ok(), what);
}

}  // namespace fuzz
