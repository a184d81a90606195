// Event payloads: JSON text from a publisher or the wire, parsed with the
// strict parse (json::parse_into, what the buses' decode calls), then
// detail::share_payload (lib/events/event_payload.hpp), the copy every
// subscriber shares; and detail::parse_payload, which parses straight into a
// payload's own pool with the same parse. Invariants: no crash; both accept
// exactly the same texts; the shared copy and the parsed payload serialise to
// the same text as the parsed document, and that text is strict JSON.
#include <cstdint>

#include "events/event_payload.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ordinaut::Json doc;
  auto direct = ordinaut::detail::parse_payload(text);
  if (!ordinaut::json::parse_into(doc, text)) {
    fuzz::require(doc.IsNull(), "a failed parse leaves the document null");
    fuzz::require(!direct, "parse_payload refuses what parse_into refuses");
    return 0;
  }
  fuzz::require(direct.ok(), "parse_payload accepts what parse_into accepts");
  const std::string parsed = ordinaut::json::dump(doc);
  fuzz::require(ordinaut::json::dump(**direct) == parsed, "parse_payload gives the parsed document");
  auto shared = ordinaut::detail::share_payload(doc);
  fuzz::require(ordinaut::json::dump(*shared) == parsed, "the shared copy equals the parsed payload");
  fuzz::require_strict_json(parsed, "a payload serialises to strict JSON");
  return 0;
}
