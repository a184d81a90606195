// The MCP JSON-RPC envelope as mcp_http reads a POST body: the strict parse,
// then classify() each message (a batch is an array), then the answer the
// server builds from what it read (error_message/result_message with the
// message's id). Invariants: no crash; every answer is strict JSON (valid
// UTF-8: an id of "\xff\xfe" must never come back raw); ids are "null",
// a string or an integer.
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "protocol.hpp"

namespace {

void answer(const ordinaut::JsonValue& value) {
  using namespace ordinaut::mcp_http;
  const Message m = classify(value);
  fuzz::require_strict_json(m.id, "the id is JSON");
  fuzz::require(m.id == "null" || m.id.front() == '"' || m.id.front() == '-' || (m.id.front() >= '0' && m.id.front() <= '9'),
                "the id is null, a string or an integer");
  switch (m.kind) {
    case MessageKind::invalid:
      fuzz::require_strict_json(error_message(m.id, kInvalidRequest, "Invalid Request: " + m.problem), "error answer");
      break;
    case MessageKind::request:
      fuzz::require_strict_json(error_message(m.id, kMethodNotFound, "Method not found: " + m.method), "method answer");
      fuzz::require_strict_json(result_message(m.id, "{}"), "result answer");
      (void)log_level_rank(m.method);
      break;
    case MessageKind::notification:
      fuzz::require_strict_json(notification_message(m.method), "notification");
      break;
    case MessageKind::response:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto doc = ordinaut::json::parse(body);
  if (!doc) {
    using namespace ordinaut::mcp_http;
    fuzz::require_strict_json(error_message("null", kParseError, "Parse error: " + doc.error().message),
                              "parse error answer");
    return 0;
  }
  if (doc->IsArray()) {
    for (const auto& item : doc->GetArray()) answer(item);
  } else {
    answer(*doc);
  }
  if (auto decoded = ordinaut::mcp_http::base64url_decode(body)) {
    fuzz::require(ordinaut::mcp_http::base64url_encode(*decoded).size() <= body.size() + 3, "base64url round trip");
  }
  return 0;
}
