// Event payloads: JSON text from a publisher or the wire, parsed with the
// strict parse (json::parse_into, what the buses' decode is to call), then
// detail::share_payload (lib/events/event_payload.hpp), the copy every
// subscriber shares. Invariants: no crash; the shared copy serialises to the
// same text as the parsed document, and that text is strict JSON.
//
// Not fed here: detail::parse_payload, the decode of lib/events/events.cpp,
// which parses with plain recursive RapidJSON. Fuzzing it found, in seconds,
// RapidJSON 1.1.0's __builtin_clzll(0) on "[0e55]" (UBSan), and it has no
// depth, UTF-8 or duplicate-key check; it is being moved with the Redis wire
// decode. Once it calls json::parse_into, feed it here instead.
#include <cstdint>

#include "events/event_payload.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ordinaut::Json doc;
  if (!ordinaut::json::parse_into(doc, text)) {
    fuzz::require(doc.IsNull(), "a failed parse leaves the document null");
    return 0;
  }
  const std::string parsed = ordinaut::json::dump(doc);
  auto shared = ordinaut::detail::share_payload(doc);
  fuzz::require(ordinaut::json::dump(*shared) == parsed, "the shared copy equals the parsed payload");
  fuzz::require_strict_json(parsed, "a payload serialises to strict JSON");
  return 0;
}
