// JSON parsing and JSON Schema validation: messages name the pointer and the
// reason; "pattern" is really enforced; hostile input does not crash.
#include <doctest/doctest.h>

#include <ordinaut/json.hpp>

#include "support.hpp"

using ordinaut::JsonSchema;
using test_support::parse_json;

namespace {

std::string validate(const char* schema, const std::string& instance) {
  auto s = JsonSchema::compile(schema);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  auto r = s->validate(parse_json(instance));
  return r.ok() ? "ok" : r.error().message;
}

}  // namespace

TEST_CASE("json: parse errors give line, column and offset") {
  auto r = ordinaut::json::parse("{\n  \"a\": [1,\n  2,,]\n}");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "invalid_json");
  CHECK(r.error().message.find("line 3, column 5 (offset 17)") == 0);
}

TEST_CASE("json: dump, escape and type names") {
  auto doc = parse_json(R"({"s":"a\"b\n","n":1.5,"i":-3,"t":true,"z":null,"a":[]})");
  CHECK(ordinaut::json::dump(doc) == R"({"s":"a\"b\n","n":1.5,"i":-3,"t":true,"z":null,"a":[]})");
  CHECK(ordinaut::json::escape("q\"\\\x01") == "q\\\"\\\\\\u0001");
  CHECK(std::string(ordinaut::json::type_name(doc["n"])) == "number");
  CHECK(std::string(ordinaut::json::type_name(doc["i"])) == "integer");
  CHECK(std::string(ordinaut::json::type_name(doc["t"])) == "boolean");
  CHECK(ordinaut::json::get_string(doc, "s") == std::optional<std::string_view>("a\"b\n"));
  CHECK_FALSE(ordinaut::json::get_string(doc, "n"));
}

TEST_CASE("schema: pattern is enforced (ECMAScript)") {
  const char* schema = R"({"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{3}\\d{2}$"}}})";
  CHECK(validate(schema, R"({"code":"ABC12"})") == "ok");
  CHECK(validate(schema, R"({"code":"abc12"})") == R"(/code: "abc12" does not match the pattern ^[A-Z]{3}\d{2}$)");
}

TEST_CASE("schema: a malformed pattern is a compile error, not ignored") {
  auto s = JsonSchema::compile(R"({"type":"object","properties":{"a":{"type":"string","pattern":"(unclosed"}}})");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == "invalid_schema");
  CHECK(s.error().message == "schema /properties/a/pattern: not a valid ECMAScript regular expression");
  auto p = JsonSchema::compile(R"({"type":"object","patternProperties":{"[a-":{}}})");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().message.find("/patternProperties/[a-") != std::string::npos);
}

TEST_CASE("schema: patternProperties with additionalProperties:false, keys in any order") {
  const char* schema = R"({"type":"object","properties":{"a":{"type":"array"}},
      "patternProperties":{"^n_":{"type":"integer"}},"additionalProperties":false})";
  CHECK(validate(schema, R"({"n_x":1,"a":[]})") == "ok");
  CHECK(validate(schema, R"({"a":[],"n_x":1})") == "ok");
  CHECK(validate(schema, R"({"n_x":"one","a":[]})") != "ok");
  CHECK(validate(schema, R"({"a":[],"n_x":"one"})") != "ok");
  CHECK(validate(schema, R"({"n_x":1,"b":2})") == R"(/b: property "b" is not allowed)");
  CHECK(validate(schema, R"({"a":{}})") == "/a: expected array, got object");
  // The schema is listed as given, without the internal rewrite.
  auto s = JsonSchema::compile(schema);
  CHECK(s->document()["additionalProperties"].IsFalse());
}

TEST_CASE("schema: nested pointers, enum, bounds, required") {
  const char* schema = R"({"type":"object","required":["items"],"properties":{"items":{"type":"array",
      "items":{"type":"object","required":["kind"],"properties":{"kind":{"enum":["a","b"]},
      "n":{"type":"integer","minimum":1}}}}}})";
  CHECK(validate(schema, R"({"items":[{"kind":"a","n":1}]})") == "ok");
  CHECK(validate(schema, R"({"items":[{"kind":"a"},{"kind":"c"}]})") == R"(/items/1/kind: "c" is not one of a, b)");
  CHECK(validate(schema, R"({"items":[{"kind":"a","n":0}]})") == "/items/0/n: 0 violates minimum 1");
  CHECK(validate(schema, R"({"items":[{}]})") == R"(/items/0/kind: required property "kind" is missing)");
  CHECK(validate(schema, "{}") == R"(/items: required property "items" is missing)");
  CHECK(validate(schema, "[]") == "/: expected object, got array");
}

TEST_CASE("schema: long strings against patterns are refused, not a stack overflow") {
  // std::regex backtracks recursively (~300 bytes of stack per character):
  // 50 000 characters against this pattern used to crash the process.
  const char* schema = R"({"type":"object","properties":{"m":{"type":"string","pattern":"^[^/\\\\][^\\\\]*$"}}})";
  CHECK(validate(schema, R"({"m":")" + std::string(1024, 'a') + "\"}") == "ok");
  CHECK(validate(schema, R"({"m":"/abs"})") != "ok");
  CHECK(validate(schema, R"({"m":")" + std::string(50000, 'a') + "\"}") ==
        "/m: a string of 50000 characters is longer than 1024, the limit for strings matched against a pattern");
  // A smaller maxLength of the schema's own keeps its own wording.
  const char* own = R"({"type":"string","maxLength":3,"pattern":"^a+$"})";
  CHECK(validate(own, R"("aaaa")") == R"(/: "aaaa" violates maxLength 3)");
}

TEST_CASE("schema: long property names against patternProperties are refused") {
  const char* schema = R"({"type":"object","properties":{"in":{"type":"object","patternProperties":{"^x-.*$":{}}}}})";
  CHECK(validate(schema, R"({"in":{"x-ok":1}})") == "ok");
  auto long_key = std::string(50000, 'k');
  CHECK(validate(schema, R"({"in":{")" + long_key + R"(":1}})") ==
        "/in: a property name of 50000 characters is longer than 1024, the limit for names matched against "
        "patternProperties");
}

TEST_CASE("json: nesting deeper than 512 levels is refused, not a stack overflow") {
  auto ok = ordinaut::json::parse(std::string(512, '[') + std::string(512, ']'));
  CHECK(ok.ok());
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  auto r = ordinaut::json::parse(deep);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "invalid_json");
  CHECK(r.error().message == "line 1, column 513 (offset 512): nesting deeper than 512 levels");
  // Brackets inside strings do not count.
  auto text = ordinaut::json::parse("{\"s\":\"" + std::string(2000, '[') + "\\\"\"}");
  CHECK(text.ok());
}

TEST_CASE("schema: boolean schemas and bad schemas") {
  CHECK(JsonSchema::compile(parse_json("true")).ok());
  auto never = JsonSchema::compile(parse_json("false"));
  REQUIRE(never.ok());
  CHECK_FALSE(never->validate(parse_json("1")).ok());
  auto bad = JsonSchema::compile(parse_json("3"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_schema");
  CHECK(JsonSchema::compile("{nope").error().message.find("not valid JSON") != std::string::npos);
}
