// The JSON helpers of json.hpp: building documents without allocator
// plumbing (Init, object, array, set, push), typed reads by JSON pointer with
// errors naming the pointer (find, get, get_or), and error details.
#include <doctest/doctest.h>

#include <limits>
#include <optional>
#include <string>

#include <ordinaut/http.hpp>
#include <ordinaut/json.hpp>

#include "support.hpp"

namespace json = ordinaut::json;
using ordinaut::Json;
using ordinaut::JsonValue;
using test_support::parse_json;

TEST_CASE("object and array build every kind of value, copying strings and nested documents") {
  std::optional<std::string> none;
  std::optional<int> some = 7;
  const std::string owner = "ana";
  Json doc = json::object({{"id", std::string("t-1")},       // a temporary std::string
                           {"count", 3},
                           {"big", std::numeric_limits<std::uint64_t>::max()},
                           {"neg", std::int64_t{-5}},
                           {"ratio", 0.5},
                           {"ok", true},
                           {"nothing", nullptr},
                           {"none", none},
                           {"some", some},
                           {"view", std::string_view("sv")},
                           {"tags", json::array({"a", "b", 1})},
                           {"owner", json::object({{"name", owner}})}});
  CHECK(json::dump(doc) ==
        R"({"id":"t-1","count":3,"big":18446744073709551615,"neg":-5,"ratio":0.5,"ok":true,"nothing":null,)"
        R"("none":null,"some":7,"view":"sv","tags":["a","b",1],"owner":{"name":"ana"}})");
  // An existing value is deep-copied: changing the source later changes nothing.
  Json source = parse_json(R"({"x":[1,2]})");
  Json copy = json::object({{"from", source}});
  source["x"].PushBack(3, source.GetAllocator());
  CHECK(json::dump(copy) == R"({"from":{"x":[1,2]}})");
  CHECK(json::dump(json::array({})) == "[]");
  CHECK(json::dump(json::object({})) == "{}");
}

TEST_CASE("a repeated key keeps its last value; set replaces; push appends") {
  Json doc = json::object({{"a", 1}, {"a", 2}});
  CHECK(json::dump(doc) == R"({"a":2})");
  json::set(doc, "a", "three");
  json::set(doc, "b", json::array({}));
  json::push(doc["b"], 1, doc.GetAllocator());
  json::push(doc["b"], json::object({{"k", "v"}}), doc.GetAllocator());
  CHECK(json::dump(doc) == R"({"a":"three","b":[1,{"k":"v"}]})");
  Json list = json::array({});
  json::push(list, "x");
  CHECK(json::dump(list) == R"(["x"])");
  // The result is valid input for the strict parser (no duplicate keys).
  CHECK(json::parse(json::dump(json::object({{"k", 1}, {"k", 2}}))).ok());
}

TEST_CASE("get reads typed values by JSON pointer") {
  Json doc = parse_json(R"({"n":42,"big":9007199254740993,"neg":-1,"f":1.5,"s":"hi","b":false,
                           "list":[{"name":"first"},{"name":"second"}],"a/b":{"c~d":"escaped"},"nul":null})");
  CHECK(*json::get<int>(doc, "/n") == 42);
  CHECK(*json::get<std::int64_t>(doc, "/big") == 9007199254740993LL);
  CHECK(*json::get<double>(doc, "/f") == 1.5);
  CHECK(*json::get<double>(doc, "/n") == 42.0);  // any number reads as double
  CHECK(*json::get<std::string>(doc, "/s") == "hi");
  CHECK(*json::get<std::string_view>(doc, "/list/1/name") == "second");
  CHECK(*json::get<bool>(doc, "/b") == false);
  CHECK(*json::get<std::string>(doc, "/a~1b/c~0d") == "escaped");
  CHECK((*json::get<const JsonValue*>(doc, ""))->IsObject());
  CHECK(*json::get_or<int>(doc, "/missing", 9) == 9);
  CHECK(*json::get_or<int>(doc, "/nul", 9) == 9);  // null counts as absent
  CHECK(*json::get_or<std::string>(doc, "/s", "x") == "hi");
}

TEST_CASE("get's errors name the pointer and say what is wrong") {
  Json doc = parse_json(R"({"n":"forty","big":3000000000,"neg":-1,"f":1.5,"list":[1],"huge":1e30})");
  auto expect = [](const auto& r, const char* pointer, const char* message) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_field");
    CHECK(r.error().pointer == pointer);
    CHECK(r.error().message == message);
  };
  expect(json::get<int>(doc, "/n"), "/n", "/n must be an integer, got string");
  expect(json::get<int>(doc, "/missing"), "/missing", "/missing is required");
  expect(json::get<int>(doc, "/big"), "/big", "/big: 3000000000 does not fit in int");
  expect(json::get<std::uint64_t>(doc, "/neg"), "/neg", "/neg: -1 does not fit in uint64");
  expect(json::get<int>(doc, "/f"), "/f", "/f must be an integer, got number");
  expect(json::get<std::int64_t>(doc, "/huge"), "/huge", "/huge: 1e+30 does not fit in a 64-bit integer");
  expect(json::get<std::string>(doc, "/list/1"), "/list/1", "/list/1 is required");
  expect(json::get<std::string>(doc, "/list/01"), "/list/01", "/list/01 is required");  // no leading zeros
  expect(json::get<bool>(doc, "/list"), "/list", "/list must be a boolean, got array");
  expect(json::get_or<int>(doc, "/n", 1), "/n", "/n must be an integer, got string");  // present, wrong type
  CHECK(json::find(doc, "n") == nullptr);     // a pointer starts with "/"
  CHECK(json::find(doc, "/a~2") == nullptr);  // "~" must be followed by 0 or 1
  CHECK(json::pointer_token("a/b~c") == "a~1b~0c");
}

TEST_CASE("error details: add_detail, error_details and Response::error carry code, pointer and position") {
  auto parsed = json::parse("{\n  \"a\": tru\n}");
  REQUIRE_FALSE(parsed.ok());
  ordinaut::Error e = parsed.error();
  auto response = ordinaut::Response::error(400, "bad_request", e);
  CHECK(response.status == 400);
  Json body = parse_json(response.body);
  CHECK(body["error"] == "bad_request");
  CHECK(std::string(body["message"].GetString()) == e.message);
  CHECK(body["details"]["code"] == "invalid_json");
  CHECK(body["details"]["line"].GetUint64() == 2);
  CHECK(body["details"]["column"].GetUint64() == e.column);
  CHECK(body["details"]["offset"].GetUint64() == *e.offset);

  ordinaut::Error denied = ordinaut::make_error("forbidden", "no");
  json::add_detail(denied, "missing_capability", "EVENTS_PUB");
  json::add_detail(denied, "tool", "ext.x.y");
  json::add_detail(denied, "tool", "ext.x.z");  // replaces
  denied.pointer = "/topic";
  CHECK(json::dump(json::error_details(denied)) ==
        R"({"missing_capability":"EVENTS_PUB","tool":"ext.x.z","code":"forbidden","pointer":"/topic"})");
}
