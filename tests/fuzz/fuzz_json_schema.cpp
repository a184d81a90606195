// json::parse and JsonSchema::validate as used for tool input: any bytes.
// Invariants: no crash; a parse error has an offset within the input and a
// message that starts with the same numbers; a parsed document serialises to
// text the same parse accepts and that reads back the same.
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "fuzz_support.hpp"

namespace {

const ordinaut::JsonSchema& tool_schema() {
  static const ordinaut::JsonSchema schema = [] {
    auto s = ordinaut::JsonSchema::compile(R"({
      "type": "object", "required": ["name"], "additionalProperties": false,
      "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z][a-z0-9_]*$"},
        "count": {"type": "integer", "minimum": 0, "maximum": 1000},
        "tags": {"type": "array", "uniqueItems": true, "items": {"enum": ["a", "b", "c"]}},
        "nested": {"type": "object", "patternProperties": {"^x-": {"type": ["string", "number"]}},
                   "additionalProperties": false},
        "any": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 3}, {"not": {"type": "boolean"}}]}
      }})");
    if (!s) std::abort();
    return std::move(s).value();
  }();
  return schema;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = ordinaut::json::parse(text);
  if (!doc) {
    const ordinaut::Error& e = doc.error();
    fuzz::require(e.code == "invalid_json", "parse error code");
    fuzz::require(e.offset.has_value() && *e.offset <= size, "parse error offset within the input");
    fuzz::require(e.message.starts_with(fmt::format("line {}, column {} (offset {}): ", e.line, e.column, *e.offset)),
                  "message and fields agree");
    return 0;
  }
  const std::string dumped = ordinaut::json::dump(*doc);
  auto again = ordinaut::json::parse(dumped);
  fuzz::require(again.ok(), "dump() output is accepted by parse()");
  fuzz::require(*again == *doc, "dump() round-trips");
  (void)tool_schema().validate(*doc);
  if (doc->IsObject() && doc->HasMember("any")) (void)tool_schema().validate((*doc)["any"]);
  return 0;
}
