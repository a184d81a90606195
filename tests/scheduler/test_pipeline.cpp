// Scheduler pipelines: templates, the `if` language, backoff, parsing and
// create-time checks, and the executor running real registry tools with
// retries, timeouts and cancellation. No test depends on timing: waits use an
// injected sleep, or a flag with a generous deadline.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ordinaut/json.hpp>
#include <ordinaut/tools.hpp>

#include "condition.hpp"
#include "pipeline.hpp"
#include "template.hpp"

using namespace ordinaut;
using namespace ordinaut::scheduler;
using namespace std::chrono_literals;

namespace {

Json parse(std::string_view text) {
  auto r = json::parse(text);
  REQUIRE_MESSAGE(r.ok(), text);
  return std::move(r).value();
}

std::string dump(const JsonValue& v) { return json::dump(v); }

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// {"params":..,"steps":..,"now":..,"event":..} from text.
Json scope_of(std::string_view text) { return parse(text); }

const char* kScope = R"({
  "params": {"n": 42, "name": "Ada", "flag": true, "none": null, "obj": {"a": [1, 2]}, "list": ["x", "y"],
             "zero": 0, "empty": "", "f": 1.5, "big": 9007199254740993, "max-size": 5},
  "steps": {"s": {"ok": true, "count": 3, "items": [{"id": "i0"}, {"id": "i1"}]}},
  "now": "2026-12-02T10:00:00.000Z",
  "event": {"topic": "orders.created", "payload": {"k": "v", "n": 7}}
})";

Result<bool> eval(std::string_view condition, const char* scope = kScope) {
  auto c = Condition::parse(condition);
  if (!c) return c.error();
  Json s = scope_of(scope);
  return c->evaluate(s);
}

bool holds(std::string_view condition) {
  auto r = eval(condition);
  REQUIRE_MESSAGE(r.ok(), condition << ": " << r.error().message);
  return *r;
}

Error condition_error(std::string_view condition) {
  auto c = Condition::parse(condition);
  REQUIRE_MESSAGE(!c.ok(), condition);
  return c.error();
}

Json rendered(std::string_view value, const char* scope = kScope) {
  Json v = parse(value);
  Json s = scope_of(scope);
  auto r = render(v, s);
  REQUIRE_MESSAGE(r.ok(), value << ": " << r.error().message);
  return std::move(r).value();
}

Error render_error(std::string_view value, const char* scope = kScope) {
  Json v = parse(value);
  Json s = scope_of(scope);
  auto r = render(v, s);
  REQUIRE_MESSAGE(!r.ok(), value);
  return r.error();
}

}  // namespace

// ---------------------------------------------------------------- templates

TEST_CASE("templates: a string that is exactly one template keeps the JSON type") {
  CHECK(dump(rendered(R"({"v":"${params.n}"})")) == R"({"v":42})");
  CHECK(dump(rendered(R"({"v":"${params.flag}"})")) == R"({"v":true})");
  CHECK(dump(rendered(R"({"v":"${params.none}"})")) == R"({"v":null})");
  CHECK(dump(rendered(R"({"v":"${params.obj}"})")) == R"({"v":{"a":[1,2]}})");
  CHECK(dump(rendered(R"({"v":"${params.list}"})")) == R"({"v":["x","y"]})");
  CHECK(dump(rendered(R"({"v":"${params.f}"})")) == R"({"v":1.5})");
  CHECK(dump(rendered(R"({"v":"${params.big}"})")) == R"({"v":9007199254740993})");
  CHECK(dump(rendered(R"({"v":"${ params.name }"})")) == R"({"v":"Ada"})");  // spaces inside are trimmed
  CHECK(dump(rendered(R"({"v":"${now}"})")) == R"({"v":"2026-12-02T10:00:00.000Z"})");
  CHECK(dump(rendered(R"({"v":"${event}"})")) == R"({"v":{"topic":"orders.created","payload":{"k":"v","n":7}}})");
  CHECK(dump(rendered(R"({"v":"${event.payload.n}"})")) == R"({"v":7})");
  CHECK(dump(rendered(R"({"v":"${steps.s.items.1.id}"})")) == R"({"v":"i1"})");
  CHECK(dump(rendered(R"({"v":"${params.obj.a.0}"})")) == R"({"v":1})");
}

TEST_CASE("templates: embedded templates are stringified") {
  CHECK(dump(rendered(R"({"v":"n=${params.n}"})")) == R"({"v":"n=42"})");
  CHECK(dump(rendered(R"({"v":"${params.name} is ${params.n}"})")) == R"({"v":"Ada is 42"})");
  CHECK(dump(rendered(R"({"v":"${params.name}${params.name}"})")) == R"({"v":"AdaAda"})");
  CHECK(dump(rendered(R"({"v":"[${params.flag}|${params.none}]"})")) == R"({"v":"[true|null]"})");
  CHECK(dump(rendered(R"({"v":"o=${params.obj}"})")) == R"({"v":"o={\"a\":[1,2]}"})");
  CHECK(dump(rendered(R"({"v":"topic ${event.topic} at ${now}"})")) ==
        R"({"v":"topic orders.created at 2026-12-02T10:00:00.000Z"})");
}

TEST_CASE("templates: $${ escapes, other dollars stay, keys are not rendered") {
  CHECK(dump(rendered(R"({"v":"$${params.n}"})")) == R"({"v":"${params.n}"})");
  CHECK(dump(rendered(R"({"v":"cost $5, $$ and $"})")) == R"({"v":"cost $5, $$ and $"})");
  CHECK(dump(rendered(R"({"v":"$${x} and ${params.n}"})")) == R"({"v":"${x} and 42"})");
  CHECK(dump(rendered(R"({"${params.n}":"${params.n}"})")) == R"({"${params.n}":42})");
  CHECK(dump(rendered(R"({"a":[1,"${params.n}",{"b":"${params.name}"}],"c":null,"d":false})")) ==
        R"({"a":[1,42,{"b":"Ada"}],"c":null,"d":false})");
  CHECK(has_template("x ${a}"));
  CHECK_FALSE(has_template("x $${a}"));
  CHECK_FALSE(has_template("x $ {a}"));
  CHECK(contains_template(parse(R"({"a":[{"b":"${params.n}"}]})")));
  CHECK_FALSE(contains_template(parse(R"({"a":[{"b":"$${params.n}"}],"${k}":1})")));
}

TEST_CASE("templates: paths that do not resolve are errors naming the template and the pointer") {
  Error e = render_error(R"({"q":{"list":[0,"${params.missing}"]}})");
  CHECK(e.code == "template_error");
  CHECK(e.pointer == "/q/list/1");
  CHECK(contains(e.message, "${params.missing}"));
  CHECK(contains(e.message, "params has no member \"missing\""));

  e = render_error(R"({"v":"${params.list.5}"})");
  CHECK(contains(e.message, "params.list has 2 elements, no index 5"));
  e = render_error(R"({"v":"${params.list.x}"})");
  CHECK(contains(e.message, "params.list is an array and \"x\" is not an index"));
  e = render_error(R"({"v":"${params.n.x}"})");
  CHECK(contains(e.message, "cannot look up \"x\" in params.n"));
  e = render_error(R"({"v":"x ${steps.other.y}"})");
  CHECK(contains(e.message, "steps has no member \"other\""));
  e = render_error(R"({"v":"${event.payload}"})", R"({"params":{},"steps":{},"now":"","event":null})");
  CHECK(contains(e.message, "there is no event"));
  // keys with '/' and '~' are escaped in the pointer (RFC 6901)
  e = render_error(R"({"a/b":{"c~d":"${params.nope}"}})");
  CHECK(e.pointer == "/a~1b/c~0d");
}

TEST_CASE("templates: syntax errors") {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c :
       {Case{"${params.n", "unterminated \"${\" at offset 0"}, Case{"ab ${}", "empty \"${}\" at offset 3"},
        Case{"${  }", "empty"}, Case{"${foo.x}", "unknown root \"foo\""}, Case{"${params..x}", "a segment is empty"},
        Case{"${params.x.}", "a segment is empty"}, Case{"${.x}", "the root is empty"},
        Case{"${params.a b}", "the character ' ' is not allowed"},
        Case{"${params.a[0]}", "the character '[' is not allowed"}, Case{"${now.x}", "now is a string"}}) {
    CAPTURE(c.text);
    auto r = parse_template(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "template_error");
    CHECK(contains(r.error().message, c.message));
  }
  std::string deep = "${params";
  for (int i = 0; i < 40; ++i) deep += ".a";
  deep += "}";
  CHECK(contains(parse_template(deep).error().message, "more than 32 segments"));
}

TEST_CASE("templates: nesting built in code is bounded too") {
  Json deep(rapidjson::kArrayType);
  JsonValue* inner = &deep;
  for (int i = 0; i < 600; ++i) {
    inner->PushBack(JsonValue(rapidjson::kArrayType), deep.GetAllocator());
    inner = &(*inner)[0];
  }
  inner->PushBack(JsonValue("${params.n}"), deep.GetAllocator());
  Json s = scope_of(kScope);
  auto r = render(deep, s);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "template_error");
  CHECK(contains(r.error().message, "nested deeper than 512 levels"));
  CHECK(contains_template(deep));  // too deep to look through counts as templated
  CHECK_FALSE(for_each_template(deep, [](const std::string&, const std::vector<TemplatePiece>&) {
                return Result<void>{};
              }).ok());
}

// ---------------------------------------------------------------- conditions

TEST_CASE("conditions: each comparison operator on numbers and strings") {
  CHECK(holds("params.n == 42"));
  CHECK_FALSE(holds("params.n == 41"));
  CHECK(holds("params.n != 41"));
  CHECK(holds("params.n < 43"));
  CHECK_FALSE(holds("params.n < 42"));
  CHECK(holds("params.n <= 42"));
  CHECK_FALSE(holds("params.n <= 41"));
  CHECK(holds("params.n > 41"));
  CHECK_FALSE(holds("params.n > 42"));
  CHECK(holds("params.n >= 42"));
  CHECK_FALSE(holds("params.n >= 43"));
  CHECK(holds("params.f > 1"));
  CHECK(holds("params.f < 2"));
  CHECK(holds("-1 < 0"));
  CHECK(holds("1e3 == 1000"));
  CHECK(holds("1 == 1.0"));
  CHECK(holds("params.big > 9007199254740992"));  // integers compared exactly, not as doubles
  CHECK(holds("params.name == 'Ada'"));
  CHECK(holds("params.name == \"Ada\""));
  CHECK(holds("params.name < 'Bob'"));
  CHECK(holds("'b' > 'a'"));
  CHECK(holds("'abc' >= 'abc'"));
  CHECK(holds("'it\\'s' == \"it's\""));
  CHECK(holds("event.topic == 'orders.created'"));
  CHECK(holds("steps.s.items.0.id == 'i0'"));
  CHECK(holds("now == '2026-12-02T10:00:00.000Z'"));
  CHECK(holds("params.max-size == 5"));  // '-' is part of a name: there is no arithmetic
  CHECK(dump(rendered(R"({"v":"${params.max-size}"})")) == R"({"v":5})");
}

TEST_CASE("conditions: equality is deep and typed; ordering of other pairs is false") {
  CHECK(holds("params.obj == params.obj"));
  CHECK_FALSE(holds("params.obj == params.list"));
  CHECK(holds("params.none == null"));
  CHECK(holds("params.flag == true"));
  CHECK_FALSE(holds("params.n == '42'"));
  CHECK(holds("params.n != '42'"));
  CHECK_FALSE(holds("params.n < 'z'"));
  CHECK_FALSE(holds("params.n > 'z'"));
  CHECK_FALSE(holds("null < 1"));
  CHECK_FALSE(holds("null >= 1"));
  CHECK_FALSE(holds("true > false"));
}

TEST_CASE("conditions: missing paths are null; truthiness") {
  CHECK(holds("params.absent == null"));
  CHECK(holds("!steps.skipped.ok"));
  CHECK_FALSE(holds("steps.skipped.count > 3"));
  CHECK_FALSE(holds("steps.skipped.count <= 3"));
  CHECK(holds("event.payload.nope.deeper == null"));
  // falsy: false, null, 0, "", [], {}
  CHECK_FALSE(holds("false"));
  CHECK_FALSE(holds("null"));
  CHECK_FALSE(holds("0"));
  CHECK_FALSE(holds("params.zero"));
  CHECK_FALSE(holds("params.empty"));
  CHECK_FALSE(holds("''"));
  auto empty = eval("params.a || params.o", R"({"params":{"a":[],"o":{}}})");
  REQUIRE(empty.ok());
  CHECK_FALSE(*empty);
  // truthy: everything else
  CHECK(holds("params.n"));
  CHECK(holds("params.f"));
  CHECK(holds("-0.5"));
  CHECK(holds("'0'"));
  CHECK(holds("params.list"));
  CHECK(holds("params.obj"));
  CHECK(holds("steps.s"));
}

TEST_CASE("conditions: boolean operators and precedence") {
  CHECK(holds("true && true"));
  CHECK_FALSE(holds("true && false"));
  CHECK(holds("false || true"));
  CHECK_FALSE(holds("false || false"));
  CHECK(holds("!false"));
  CHECK(holds("!!true"));
  CHECK(holds("true || false && false"));  // && binds tighter than ||
  CHECK_FALSE(holds("(true || false) && false"));
  CHECK(holds("false && false || true"));
  CHECK(holds("!params.flag == false"));  // ! binds tighter than ==: (!flag) == false
  CHECK_FALSE(holds("!(params.flag == true)"));
  CHECK(holds("params.n > 1 && params.name == 'Ada' || false"));
  CHECK(holds("(params.n == 42) == true"));     // comparisons yield booleans
  CHECK(holds("(params.n || false) == true"));  // && and || yield booleans too
  CHECK(holds("params.flag&&steps.s.ok"));      // no spaces needed
  CHECK(holds(" ( ( params.flag ) ) "));
  // short-circuit: the right side is not needed, and a long chain does not nest
  std::string chain = "false";
  for (int i = 0; i < 400; ++i) chain += " || false";
  chain += " || true";
  CHECK(holds(chain));
}

TEST_CASE("conditions: errors name the column") {
  struct Case {
    const char* text;
    std::size_t column;
    const char* message;
  };
  for (const Case& c : {
           Case{"", 1, "the condition is empty"},
           Case{"   ", 4, "the condition is empty"},
           Case{"params.n ==", 12, "expected a value"},
           Case{"params.n = 1", 10, "'=' is not an operator; compare with '=='"},
           Case{"a & b", 1, "unknown root \"a\""},
           Case{"true & false", 6, "'&' is not an operator"},
           Case{"true | false", 6, "'|' is not an operator"},
           Case{"(params.n == 1", 15, "expected ')' to close the '(' at column 1"},
           Case{"params.n == 1)", 14, "expected '&&', '||' or the end"},
           Case{"1 < 2 < 3", 7, "comparisons do not chain"},
           Case{"foo.bar", 1, "unknown root \"foo\""},
           Case{"params..x", 1, "a segment is empty"},
           Case{"'abc", 1, "unterminated string"},
           Case{"'a\\qb'", 3, "unknown escape '\\q'"},
           Case{"01 == 1", 1, "\"01\" is not a valid number"},
           Case{"1. == 1", 1, "\"1.\" is not a valid number"},
           Case{"params.n == #", 13, "unexpected character '#'"},
           Case{"params.n == \x01", 13, "unexpected byte 0x01"},
           Case{"params.flag true", 13, "expected '&&', '||' or the end, found a name"},
           Case{"!", 2, "expected a value"},
           Case{"()", 2, "expected a value"},
       }) {
    CAPTURE(c.text);
    Error e = condition_error(c.text);
    CHECK(e.code == "invalid_condition");
    CHECK(e.column == c.column);
    REQUIRE(e.offset.has_value());
    CHECK(*e.offset == c.column - 1);
    CHECK(contains(e.message, "column " + std::to_string(c.column) + ": "));
    CHECK(contains(e.message, c.message));
  }
}

TEST_CASE("conditions: depth and length are bounded") {
  std::string ok = std::string(64, '(') + "true" + std::string(64, ')');
  CHECK(holds(ok));
  std::string deep = std::string(65, '(') + "true" + std::string(65, ')');
  Error e = condition_error(deep);
  CHECK(contains(e.message, "nested deeper than 64 levels"));
  CHECK(e.column == 65);
  CHECK(holds(std::string(64, '!') + "true"));
  CHECK(contains(condition_error(std::string(65, '!') + "true").message, "nested deeper than 64"));
  // a million opening parentheses fail fast, without recursing a million deep
  CHECK(contains(condition_error(std::string(4000, '(')).message, "nested deeper"));
  std::string long_text(kMaxConditionLength + 1, ' ');
  long_text[0] = '1';
  e = condition_error(long_text);
  CHECK(contains(e.message, "at most 4096"));
}

TEST_CASE("conditions: paths are listed; evaluation needs an object scope") {
  auto c = Condition::parse("params.a == steps.b.c || !event.topic");
  REQUIRE(c.ok());
  REQUIRE(c->paths().size() == 3);
  CHECK(c->paths()[0].text == "params.a");
  CHECK(c->paths()[1].root == "steps");
  CHECK(c->paths()[1].segments == std::vector<std::string>{"b", "c"});
  CHECK(c->paths()[2].text == "event.topic");
  CHECK(c->text() == "params.a == steps.b.c || !event.topic");
  Json not_object = parse("[1]");
  auto r = c->evaluate(not_object);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "invalid_condition");
  Condition copy = *c;  // copies share the compiled tree
  Json s = scope_of(kScope);
  CHECK(copy.evaluate(s).ok());
}

TEST_CASE("conditions and templates: random input never crashes (deterministic seed)") {
  // Pieces that make up plausible and broken expressions alike.
  const char* pieces[] = {"params.n", "steps.s.ok", "event.topic", "now",  "params.", "..",    "(",  ")",
                          "!",        "==",         "!=",          "<",    "<=",      ">",     ">=", "&&",
                          "||",       "&",          "|",           "=",    "'a'",     "\"b\"", "'",  "\\",
                          "1",        "-2.5e3",     "01",          "true", "false",   "null",  " ",  "${",
                          "}",        "$${",        "$",           "\xff", "\x01",    "foo"};
  Json scope = scope_of(kScope);
  std::uint64_t seed = 42;
  int parsed = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    const int count = 1 + static_cast<int>((seed >> 33) % 12);
    for (int i = 0; i < count; ++i) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      text += pieces[(seed >> 33) % std::size(pieces)];
    }
    CAPTURE(text);
    auto c = Condition::parse(text);
    if (c) {
      ++parsed;
      CHECK(c->evaluate(scope).ok());
    } else {
      CHECK(c.error().code == "invalid_condition");
      CHECK(c.error().offset.value_or(0) <= text.size());
    }
    auto t = parse_template(text);
    if (!t) CHECK(t.error().code == "template_error");
    Json value(rapidjson::kObjectType);
    value.AddMember("v", JsonValue(text.data(), static_cast<rapidjson::SizeType>(text.size()), value.GetAllocator()),
                    value.GetAllocator());
    auto r = render(value, scope);
    if (!r) CHECK(r.error().code == "template_error");
  }
  CHECK(parsed > 50);  // the generator does produce valid conditions too
}

// ---------------------------------------------------------------- backoff

TEST_CASE("backoff: names, values, cap and jitter") {
  for (const char* name : {"exponential_jitter", "exponential", "linear", "fixed", "none"}) {
    auto b = Backoff::parse(name);
    REQUIRE(b.ok());
    CHECK(b->name() == name);
  }
  for (const char* bad : {"", "Exponential", "random", "exponential-jitter"}) {
    auto b = Backoff::parse(bad);
    REQUIRE_FALSE(b.ok());
    CHECK(b.error().code == "invalid_backoff");
    CHECK(contains(b.error().message, "is not one of exponential_jitter, exponential, linear, fixed, none"));
  }
  CHECK(Backoff().kind() == Backoff::Kind::exponential_jitter);
  CHECK(Backoff().base() == 1s);
  CHECK(Backoff().cap() == 300s);

  Backoff exponential(Backoff::Kind::exponential);
  CHECK(exponential.delay(0, 0) == 0ms);
  CHECK(exponential.delay(1, 0) == 1000ms);
  CHECK(exponential.delay(2, 0) == 2000ms);
  CHECK(exponential.delay(3, 0) == 4000ms);
  CHECK(exponential.delay(9, 0) == 256000ms);
  CHECK(exponential.delay(10, 0) == 300000ms);       // capped
  CHECK(exponential.delay(1000000, 0) == 300000ms);  // no overflow

  Backoff linear(Backoff::Kind::linear);
  CHECK(linear.delay(1, 0) == 1000ms);
  CHECK(linear.delay(7, 0) == 7000ms);
  CHECK(linear.delay(301, 0) == 300000ms);
  CHECK(linear.delay(2147483647, 0) == 300000ms);

  Backoff fixed(Backoff::Kind::fixed, 250ms);
  CHECK(fixed.delay(1, 99) == 250ms);
  CHECK(fixed.delay(50, 99) == 250ms);
  CHECK(Backoff(Backoff::Kind::none).delay(5, 123) == 0ms);

  Backoff jitter;  // full jitter: uniform in [0, min(cap, base*2^(n-1))]
  CHECK(jitter.delay(1, 0) == 0ms);
  CHECK(jitter.delay(1, 1000) == 1000ms);
  CHECK(jitter.delay(1, 1001) == 0ms);
  CHECK(jitter.delay(3, 2500) == 2500ms);
  CHECK(jitter.delay(3, 4001 + 17) == 17ms);
  CHECK(jitter.delay(40, ~std::uint64_t{0}) <= 300000ms);
  std::uint64_t seed = 12345;
  for (int retry = 1; retry < 20; ++retry) {
    for (int i = 0; i < 50; ++i) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      auto d = jitter.delay(retry, seed);
      CHECK(d >= 0ms);
      CHECK(d <= exponential.delay(retry, 0));
    }
  }
  Backoff custom(Backoff::Kind::exponential, 100ms, 1000ms);
  CHECK(custom.delay(4, 0) == 800ms);
  CHECK(custom.delay(5, 0) == 1000ms);
}

TEST_CASE("cancel token: waits the whole time unless cancelled") {
  CancelToken token;
  CHECK_FALSE(token.cancelled());
  CHECK(token.wait_for(1ms));
  CHECK(token.wait_for(0ms));
  token.cancel();
  CHECK(token.cancelled());
  CHECK_FALSE(token.wait_for(1h));  // returns at once
  token.cancel();                   // idempotent
  CHECK(token.cancelled());
}

// ---------------------------------------------------------------- parsing

namespace {

Error pipeline_error(std::string_view text) {
  Json steps = parse(text);
  auto r = parse_pipeline(steps, "/payload/pipeline");
  REQUIRE_MESSAGE(!r.ok(), text);
  return r.error();
}

Pipeline pipeline_of(std::string_view text) {
  Json steps = parse(text);
  auto r = parse_pipeline(steps, "/payload/pipeline");
  REQUIRE_MESSAGE(r.ok(), text << ": " << r.error().message);
  return std::move(r).value();
}

}  // namespace

TEST_CASE("parse_pipeline: the step format and its defaults") {
  Pipeline p = pipeline_of(R"([
    {"id": "fetch", "uses": "test.echo", "with": {"q": "${params.q}"}, "save_as": "page",
     "if": "params.go", "timeout_seconds": 2.5, "max_retries": 3},
    {"uses": "test.add"}
  ])");
  REQUIRE(p.steps.size() == 2);
  CHECK(p.steps[0].id == "fetch");
  CHECK(p.steps[0].uses == "test.echo");
  CHECK(dump(p.steps[0].with) == R"({"q":"${params.q}"})");
  CHECK(p.steps[0].save_as == "page");
  CHECK(p.steps[0].if_expr == "params.go");
  CHECK(p.steps[0].timeout_seconds == 2.5);
  CHECK(p.steps[0].max_retries == 3);
  CHECK(p.steps[1].id == "step-2");
  CHECK(dump(p.steps[1].with) == "{}");
  CHECK(p.steps[1].save_as.empty());
  CHECK(p.steps[1].if_expr.empty());
  CHECK_FALSE(p.steps[1].timeout_seconds.has_value());
  CHECK_FALSE(p.steps[1].max_retries.has_value());
  CHECK(pipeline_of("[]").steps.empty());
}

TEST_CASE("parse_pipeline: errors carry codes, pointers and clear messages") {
  struct Case {
    const char* text;
    const char* code;
    const char* pointer;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"steps":[]})", "invalid_pipeline", "/payload/pipeline", "must be an array of steps, not object"},
           Case{R"([1])", "invalid_pipeline", "/payload/pipeline/0", "pipeline[0] must be an object"},
           Case{R"([{"uses":"a"},{"with":{}}])", "invalid_pipeline", "/payload/pipeline/1/uses",
                "pipeline[1].uses is required"},
           Case{R"([{"uses":""}])", "invalid_pipeline", "/payload/pipeline/0/uses", "uses \"\" is not valid"},
           Case{R"([{"uses":7}])", "invalid_pipeline", "/payload/pipeline/0/uses",
                "uses must be a string, not integer"},
           Case{R"([{"uses":"a b"}])", "invalid_pipeline", "/payload/pipeline/0/uses",
                "uses \"a b\" is not valid: a tool name has"},
           Case{R"([{"uses":"a","wtih":{}}])", "invalid_pipeline", "/payload/pipeline/0/wtih",
                "unknown field \"wtih\""},
           Case{R"([{"uses":"a","with":[1]}])", "invalid_pipeline", "/payload/pipeline/0/with",
                "with must be an object"},
           Case{R"([{"uses":"a","id":"x"},{"uses":"b","id":"x"}])", "invalid_pipeline", "/payload/pipeline/1/id",
                "pipeline[1].id \"x\" is already the id of pipeline[0]"},
           Case{R"([{"uses":"a","id":"step-2"},{"uses":"b"}])", "invalid_pipeline", "/payload/pipeline/1",
                "\"step-2\" is already the id of pipeline[0]"},
           Case{R"([{"uses":"a","id":"a/b"}])", "invalid_pipeline", "/payload/pipeline/0/id", "is not valid"},
           Case{R"([{"uses":"a","save_as":"r"},{"uses":"b","save_as":"r"}])", "invalid_pipeline",
                "/payload/pipeline/1/save_as", "\"r\" is already saved by pipeline[0]"},
           Case{R"([{"uses":"a","save_as":"1x"}])", "invalid_pipeline", "/payload/pipeline/0/save_as", "not valid"},
           Case{R"([{"uses":"a","save_as":"a.b"}])", "invalid_pipeline", "/payload/pipeline/0/save_as", "not valid"},
           Case{R"([{"uses":"a","if":"params.x =="}])", "invalid_condition", "/payload/pipeline/0/if",
                "pipeline[0].if: column 12: expected a value"},
           Case{R"([{"uses":"a","if":true}])", "invalid_pipeline", "/payload/pipeline/0/if", "if must be a string"},
           Case{R"([{"uses":"a","with":{"a":{"b":["${params.x"]}}}])", "template_error",
                "/payload/pipeline/0/with/a/b/0", "unterminated"},
           Case{R"([{"uses":"a","with":{"q":"${nope.x}"}}])", "template_error", "/payload/pipeline/0/with/q",
                "unknown root \"nope\""},
           Case{R"([{"uses":"a","timeout_seconds":0}])", "invalid_pipeline", "/payload/pipeline/0/timeout_seconds",
                "above 0 and at most 86400"},
           Case{R"([{"uses":"a","timeout_seconds":"5"}])", "invalid_pipeline", "/payload/pipeline/0/timeout_seconds",
                "timeout_seconds"},
           Case{R"([{"uses":"a","timeout_seconds":86401}])", "invalid_pipeline", "/payload/pipeline/0/timeout_seconds",
                "timeout_seconds"},
           Case{R"([{"uses":"a","max_retries":-1}])", "invalid_pipeline", "/payload/pipeline/0/max_retries",
                "from 0 to 100"},
           Case{R"([{"uses":"a","max_retries":1.5}])", "invalid_pipeline", "/payload/pipeline/0/max_retries",
                "integer"},
           Case{R"([{"uses":"a","max_retries":101}])", "invalid_pipeline", "/payload/pipeline/0/max_retries",
                "from 0 to 100"},
       }) {
    CAPTURE(c.text);
    Error e = pipeline_error(c.text);
    CHECK(e.code == c.code);
    CHECK(e.pointer == c.pointer);
    CHECK_MESSAGE(contains(e.message, c.message), e.message);
  }
  // user input echoed in messages is cut short
  std::string long_id(5000, 'x');
  long_id += '/';
  Error e = pipeline_error(R"([{"uses":"a","id":")" + long_id + R"("}])");
  CHECK(contains(e.message, "\"" + std::string(64, 'x') + "...\" is not valid"));
  CHECK(e.message.size() < 200);
  CHECK(excerpt("h\xc3\xa9llo", 2) == "h...");  // never cuts inside a UTF-8 character
  CHECK(excerpt("short") == "short");
  std::string many = "[";
  for (std::size_t i = 0; i <= kMaxPipelineSteps; ++i) many += std::string(i ? "," : "") + R"({"uses":"a"})";
  many += "]";
  CHECK(contains(pipeline_error(many).message, "at most 100"));
}

// ---------------------------------------------------------------- the registry

namespace {

// A registry with the tools the executor tests call.
struct Tools {
  ToolRegistry registry;
  std::atomic<int> flaky_calls{0};
  std::atomic<int> flaky_failures{0};  // how many calls of test.flaky fail before it succeeds
  std::atomic<int> slow_calls{0};
  std::atomic<int> slow_saw_cancel{0};
  std::atomic<bool> slow_running{false};

  Tools() {
    add({.name = "test.echo", .description = "returns its input", .function = [](const JsonValue& in, ToolContext&) {
           return json::copy(in);
         }});
    add({.name = "test.add",
         .description = "adds two integers",
         .input_schema = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
                             "required":["a","b"],"additionalProperties":false})",
         .function = [](const JsonValue& in, ToolContext&) {
           Json out(rapidjson::kObjectType);
           out.AddMember("sum", in["a"].GetInt64() + in["b"].GetInt64(), out.GetAllocator());
           out.AddMember("ok", true, out.GetAllocator());
           return out;
         }});
    add({.name = "test.flaky", .description = "fails a few times", .function = [this](const JsonValue&, ToolContext&) {
           int call = ++flaky_calls;
           if (call <= flaky_failures.load())
             throw ToolError("upstream_down", "call " + std::to_string(call) + " failed");
           Json out(rapidjson::kObjectType);
           out.AddMember("call", call, out.GetAllocator());
           return out;
         }});
    // Loops until the context says cancelled; a generous guard ends it if that never happens.
    add({.name = "test.slow",
         .description = "waits for cancellation",
         .function = [this](const JsonValue&, ToolContext& context) {
           ++slow_calls;
           slow_running = true;
           const auto guard = std::chrono::steady_clock::now() + 60s;
           while (!context.cancelled() && std::chrono::steady_clock::now() < guard) std::this_thread::sleep_for(1ms);
           if (context.cancelled()) ++slow_saw_cancel;
           slow_running = false;
           Json out(rapidjson::kObjectType);
           out.AddMember("done", true, out.GetAllocator());
           return out;
         }});
    add({.name = "test.log", .description = "logs", .function = [](const JsonValue&, ToolContext& context) {
           context.log("info", "hello from the tool");
           return json::object();
         }});
  }
  void add(ToolSpec spec) { REQUIRE(registry.add(std::move(spec)).ok()); }
  ToolView view() const { return ToolView(registry); }
};

// An injected sleep that records the delays and returns at once.
struct RecordingSleep {
  std::vector<std::chrono::milliseconds> delays;
  SleepFunction function() {
    return [this](std::chrono::milliseconds d, const CancelToken& token) {
      delays.push_back(d);
      return !token.cancelled();
    };
  }
};

RunOptions quick_options(RecordingSleep& sleep) {
  RunOptions options;
  options.backoff = Backoff(Backoff::Kind::exponential);
  options.now_ms = [] { return std::int64_t{1796205600000}; };  // 2026-12-02T10:00:00Z
  options.random = [] { return std::uint64_t{0}; };
  options.sleep = sleep.function();
  return options;
}

Error check_error(const Tools& tools, std::string_view steps, std::string_view params = "{}") {
  Pipeline p = pipeline_of(steps);
  Json ps = parse(params);
  auto r = check_pipeline(p, ps, tools.view(), "/payload/pipeline");
  REQUIRE_MESSAGE(!r.ok(), steps);
  return r.error();
}

}  // namespace

// ---------------------------------------------------------------- checks

TEST_CASE("check_pipeline: a valid pipeline passes") {
  Tools tools;
  Pipeline p = pipeline_of(R"([
    {"uses":"test.add","with":{"a":1,"b":2},"save_as":"sum"},
    {"uses":"test.echo","with":{"s":"${steps.sum.sum}","p":"${params.user.name}","e":"${event.x}","n":"${now}"},
     "if":"steps.sum.ok && params.maybe_absent != 1 && event.topic != 'x'"},
    {"uses":"test.add","with":{"a":"${params.list.1}","b":"${params.list.0}"}}
  ])");
  Json params = parse(R"({"user":{"name":"Ada"},"list":[1,2]})");
  auto r = check_pipeline(p, params, tools.view(), "/payload/pipeline");
  CHECK_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
}

TEST_CASE("check_pipeline: unknown tools, unresolvable templates, schema-invalid arguments") {
  Tools tools;
  Error e = check_error(tools, R"([{"uses":"test.echo"},{"id":"b","uses":"test.nope"}])");
  CHECK(e.code == "unknown_tool");
  CHECK(e.pointer == "/payload/pipeline/1/uses");
  CHECK(contains(e.message, "\"test.nope\", which is not a registered tool"));
  CHECK(contains(e.message, "id \"b\""));

  e = check_error(tools, R"([{"uses":"test.echo","with":{"x":{"y":"hi ${params.user.age}"}}}])",
                  R"({"user":{"name":"Ada"}})");
  CHECK(e.code == "template_error");
  CHECK(e.pointer == "/payload/pipeline/0/with/x/y");
  CHECK(contains(e.message, "${params.user.age}: params.user has no member \"age\""));

  e = check_error(tools, R"([{"uses":"test.echo","with":{"x":"${params.list.2}"}}])", R"({"list":[1,2]})");
  CHECK(contains(e.message, "params.list has 2 elements, no index 2"));

  e = check_error(tools, R"([{"uses":"test.echo","with":{"x":"${params.q}"}}])", "null");
  CHECK(contains(e.message, "cannot look up \"q\" in params (a null)"));

  e = check_error(tools, R"([{"uses":"test.echo","with":{"x":"${steps.later}"}},
                             {"uses":"test.echo","save_as":"later"}])");
  CHECK(e.code == "template_error");
  CHECK(e.pointer == "/payload/pipeline/0/with/x");
  CHECK(contains(e.message, "\"later\" is saved by pipeline[1], which does not run before this step"));

  e = check_error(tools, R"([{"uses":"test.echo","save_as":"me","with":{"x":"${steps.me.a}"}}])");
  CHECK(contains(e.message, "\"me\" is saved by pipeline[0], which does not run before this step"));

  e = check_error(tools, R"([{"uses":"test.echo","with":{"x":"${steps.ghost.a}"}}])");
  CHECK(contains(e.message, "no step saves \"ghost\""));

  e = check_error(tools, R"([{"uses":"test.echo","if":"steps.later.ok"},{"uses":"test.echo","save_as":"later"}])");
  CHECK(e.code == "template_error");
  CHECK(e.pointer == "/payload/pipeline/0/if");
  CHECK(contains(e.message, "pipeline[0].if reads steps.later"));

  e = check_error(tools, R"([{"uses":"test.echo"},{"uses":"test.add","with":{"a":1,"b":"two"}}])");
  CHECK(e.code == "invalid_input");
  CHECK(e.pointer == "/payload/pipeline/1/with/b");
  CHECK(contains(e.message, "does not match the input schema of \"test.add\""));

  e = check_error(tools, R"([{"uses":"test.add","with":{"a":1}}])");
  CHECK(e.code == "invalid_input");
  CHECK(e.pointer.rfind("/payload/pipeline/0/with", 0) == 0);

  e = check_error(tools, R"([{"uses":"test.add"}])");  // the default {} misses a and b
  CHECK(e.code == "invalid_input");

  // with a template the arguments are checked when rendered, at run time
  Pipeline p = pipeline_of(R"([{"uses":"test.add","with":{"a":"${params.a}","b":"x"}}])");
  Json params = parse(R"({"a":1})");
  CHECK(check_pipeline(p, params, tools.view(), "").ok());
}

// ---------------------------------------------------------------- executor

TEST_CASE("executor: real tool calls, save_as chaining, templates and ${now}") {
  Tools tools;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  Pipeline p = pipeline_of(R"([
    {"id":"sum","uses":"test.add","with":{"a":"${params.a}","b":40},"save_as":"total"},
    {"id":"say","uses":"test.echo","with":{"text":"sum is ${steps.total.sum} at ${now}","raw":"${steps.total}",
                                          "who":"${params.who}"},
     "save_as":"said"},
    {"id":"again","uses":"test.echo","with":{"x":"${steps.said.raw.sum}"}}
  ])");
  Json params = parse(R"({"a":2,"who":{"name":"Ada"}})");
  REQUIRE(check_pipeline(p, params, tools.view(), "").ok());
  CancelToken token;
  std::vector<std::string> events;
  StepObserver observer;
  observer.started = [&](const StepResult& s) {
    CHECK(s.status == StepStatus::running);
    events.push_back("started " + s.id + " " + dump(s.input));
  };
  observer.finished = [&](const StepResult& s) {
    events.push_back("finished " + s.id + " " + std::string(to_string(s.status)));
  };

  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, observer);
  CHECK(run.status == RunStatus::succeeded);
  CHECK(run.failed_step.empty());
  CHECK_FALSE(run.error.has_value());
  REQUIRE(run.steps.size() == 3);
  CHECK(run.steps[0].id == "sum");
  CHECK(run.steps[0].uses == "test.add");
  CHECK(run.steps[0].status == StepStatus::succeeded);
  CHECK(run.steps[0].attempts == 1);
  CHECK(dump(run.steps[0].input) == R"({"a":2,"b":40})");
  CHECK(dump(run.steps[0].output) == R"({"sum":42,"ok":true})");
  CHECK(run.steps[0].started_at_ms == 1796205600000);
  CHECK(run.steps[0].duration_ms >= 0);
  CHECK(dump(run.steps[1].output) ==
        R"({"text":"sum is 42 at 2026-12-02T10:00:00.000Z","raw":{"sum":42,"ok":true},"who":{"name":"Ada"}})");
  CHECK(dump(run.steps[2].output) == R"({"x":42})");
  CHECK(sleep.delays.empty());
  CHECK(events == std::vector<std::string>{"started sum {\"a\":2,\"b\":40}", "finished sum succeeded",
                                           "started say " + dump(run.steps[1].input), "finished say succeeded",
                                           "started again {\"x\":42}", "finished again succeeded"});
  // the registry really ran the tools
  for (const auto& s : tools.registry.stats()) {
    if (s.name == "test.add") CHECK(s.calls == 1);
    if (s.name == "test.echo") CHECK(s.calls == 2);
  }
}

TEST_CASE("executor: if-skipped steps, missing data in conditions, and a skipped step's save_as") {
  Tools tools;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  Pipeline p = pipeline_of(R"([
    {"id":"maybe","uses":"test.add","with":{"a":1,"b":1},"save_as":"m","if":"params.go"},
    {"id":"after","uses":"test.echo","with":{"x":1},"if":"steps.m.ok"},
    {"id":"always","uses":"test.echo","with":{"y":"${params.go}"},"if":"!steps.m.ok && params.missing == null"}
  ])");
  Json params = parse(R"({"go":false})");
  CancelToken token;
  int started = 0;
  std::vector<std::string> finished;
  StepObserver observer;
  observer.started = [&](const StepResult&) { ++started; };
  observer.finished = [&](const StepResult& s) { finished.push_back(s.id + ":" + std::string(to_string(s.status))); };
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, observer);
  CHECK(run.status == RunStatus::succeeded);
  REQUIRE(run.steps.size() == 3);
  CHECK(run.steps[0].status == StepStatus::skipped);
  CHECK(run.steps[0].attempts == 0);
  CHECK(run.steps[0].input.IsNull());
  CHECK(run.steps[0].output.IsNull());
  CHECK(run.steps[1].status == StepStatus::skipped);
  CHECK(run.steps[2].status == StepStatus::succeeded);
  CHECK(dump(run.steps[2].output) == R"({"y":false})");
  CHECK(started == 1);
  CHECK(finished == std::vector<std::string>{"maybe:skipped", "after:skipped", "always:succeeded"});

  // a template reading the skipped step's output fails that step (no retry: it cannot change)
  Pipeline q = pipeline_of(R"([
    {"id":"maybe","uses":"test.add","with":{"a":1,"b":1},"save_as":"m","if":"params.go"},
    {"id":"use","uses":"test.echo","with":{"x":{"y":"${steps.m.sum}"}},"max_retries":5}
  ])");
  run = run_pipeline(q, params, nullptr, tools.view(), options, token, {});
  CHECK(run.status == RunStatus::failed);
  CHECK(run.failed_step == "use");
  REQUIRE(run.steps.size() == 2);
  CHECK(run.steps[1].status == StepStatus::failed);
  CHECK(run.steps[1].attempts == 0);
  REQUIRE(run.steps[1].error.has_value());
  CHECK(run.steps[1].error->code == "template_error");
  CHECK(run.steps[1].error->pointer == "/with/x/y");
  CHECK(contains(run.steps[1].error->message, "steps has no member \"m\""));
  REQUIRE(run.error.has_value());
  CHECK(run.error->code == "template_error");
  CHECK(contains(run.error->message, "step \"use\" (test.echo) failed after 0 attempts"));
  CHECK(sleep.delays.empty());
}

TEST_CASE("executor: failure after retries counts attempts and waits the backoff between them") {
  Tools tools;
  tools.flaky_failures = 1000;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  options.max_retries = 3;
  Pipeline p = pipeline_of(R"([{"id":"call","uses":"test.flaky"},{"id":"never","uses":"test.echo"}])");
  Json params = parse("{}");
  CancelToken token;
  std::vector<std::chrono::milliseconds> retrying;
  StepObserver observer;
  observer.retrying = [&](const StepResult& s, std::chrono::milliseconds d) {
    CHECK(s.status == StepStatus::failed);
    REQUIRE(s.error.has_value());
    CHECK(s.error->code == "upstream_down");
    retrying.push_back(d);
  };
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, observer);
  CHECK(run.status == RunStatus::failed);
  CHECK(run.failed_step == "call");
  REQUIRE(run.steps.size() == 1);  // the step after a failure is not reached
  CHECK(run.steps[0].status == StepStatus::failed);
  CHECK(run.steps[0].attempts == 4);
  CHECK(tools.flaky_calls == 4);
  REQUIRE(run.steps[0].error.has_value());
  CHECK(run.steps[0].error->code == "upstream_down");
  CHECK(run.steps[0].error->message == "tool test.flaky: call 4 failed");
  REQUIRE(run.error.has_value());
  CHECK(run.error->code == "upstream_down");
  CHECK(run.error->message == "step \"call\" (test.flaky) failed after 4 attempts: tool test.flaky: call 4 failed");
  CHECK(sleep.delays == std::vector<std::chrono::milliseconds>{1000ms, 2000ms, 4000ms});
  CHECK(retrying == sleep.delays);

  // the default backoff jitters with the random source
  tools.flaky_calls = 0;
  sleep.delays.clear();
  options.backoff = Backoff();
  options.random = [] { return std::uint64_t{1500}; };
  run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(run.steps[0].attempts == 4);
  CHECK(sleep.delays == std::vector<std::chrono::milliseconds>{499ms, 1500ms, 1500ms});
}

TEST_CASE("executor: a step that succeeds on a retry; a step's max_retries wins over the task's") {
  Tools tools;
  tools.flaky_failures = 2;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  options.max_retries = 0;
  Pipeline p = pipeline_of(R"([{"id":"call","uses":"test.flaky","max_retries":2,"save_as":"c"},
                               {"uses":"test.echo","with":{"n":"${steps.c.call}"}}])");
  Json params = parse("{}");
  CancelToken token;
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(run.status == RunStatus::succeeded);
  CHECK(run.steps[0].status == StepStatus::succeeded);
  CHECK(run.steps[0].attempts == 3);
  CHECK_FALSE(run.steps[0].error.has_value());
  CHECK(dump(run.steps[1].output) == R"({"n":3})");
  CHECK(sleep.delays.size() == 2);

  // max_retries 0 on the step beats the task's 5
  tools.flaky_calls = 0;
  options.max_retries = 5;
  Pipeline q = pipeline_of(R"([{"uses":"test.flaky","max_retries":0}])");
  run = run_pipeline(q, params, nullptr, tools.view(), options, token, {});
  CHECK(run.status == RunStatus::failed);
  CHECK(run.steps[0].attempts == 1);
}

TEST_CASE("executor: schema-invalid rendered arguments fail the step without retries") {
  Tools tools;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  options.max_retries = 5;
  Pipeline p = pipeline_of(R"([{"id":"add","uses":"test.add","with":{"a":"${params.a}","b":1}}])");
  Json params = parse(R"({"a":"not a number"})");
  CancelToken token;
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(run.status == RunStatus::failed);
  CHECK(run.failed_step == "add");
  REQUIRE(run.steps.size() == 1);
  CHECK(run.steps[0].status == StepStatus::failed);
  CHECK(run.steps[0].attempts == 1);
  CHECK(dump(run.steps[0].input) == R"({"a":"not a number","b":1})");
  REQUIRE(run.steps[0].error.has_value());
  CHECK(run.steps[0].error->code == "invalid_input");
  CHECK(run.steps[0].error->pointer == "/a");
  CHECK(sleep.delays.empty());

  // a tool removed after the check: tool_not_found, not retried either
  REQUIRE(tools.registry.remove("test.add"));
  params = parse(R"({"a":1})");
  run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(run.steps[0].error->code == "tool_not_found");
  CHECK(run.steps[0].attempts == 1);
}

TEST_CASE("executor: a step times out through cancelled(), and is retried") {
  Tools tools;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  options.max_retries = 1;
  Pipeline p = pipeline_of(R"([{"id":"slow","uses":"test.slow","timeout_seconds":0.05}])");
  Json params = parse("{}");
  CancelToken token;
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(run.status == RunStatus::failed);
  CHECK(run.failed_step == "slow");
  REQUIRE(run.steps.size() == 1);
  CHECK(run.steps[0].status == StepStatus::timed_out);
  CHECK(run.steps[0].attempts == 2);
  CHECK(tools.slow_calls == 2);
  CHECK(tools.slow_saw_cancel == 2);    // the tool stopped because cancelled() said so, not the guard
  CHECK(run.steps[0].output.IsNull());  // what a timed-out tool returns is dropped
  REQUIRE(run.steps[0].error.has_value());
  CHECK(run.steps[0].error->code == "step_timeout");
  CHECK(contains(run.steps[0].error->message, "step \"slow\" did not finish within 0.05 s (attempt 2)"));
  CHECK(run.error->code == "step_timeout");
  CHECK_FALSE(token.cancelled());  // a timeout does not cancel the run
  CHECK(sleep.delays.size() == 1);

  // the task-wide default timeout applies to steps without their own
  tools.slow_calls = 0;
  options.max_retries = 0;
  options.timeout_seconds = 0.02;
  Pipeline q = pipeline_of(R"([{"uses":"test.slow"}])");
  run = run_pipeline(q, params, nullptr, tools.view(), options, token, {});
  CHECK(run.steps[0].status == StepStatus::timed_out);
  CHECK(tools.slow_calls == 1);
}

namespace {

// Waits (generously) until `flag` is true.
bool wait_until(const std::atomic<bool>& flag) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!flag.load()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("executor: cancelling a run stops a running tool, which is not retried") {
  Tools tools;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  options.max_retries = 3;
  Pipeline p = pipeline_of(R"([{"id":"slow","uses":"test.slow"},{"id":"next","uses":"test.echo"}])");
  Json params = parse("{}");
  CancelToken token;
  std::thread canceller([&] {
    CHECK(wait_until(tools.slow_running));
    token.cancel();
  });
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  canceller.join();
  CHECK(run.status == RunStatus::cancelled);
  CHECK(run.failed_step == "slow");
  REQUIRE(run.steps.size() == 1);
  CHECK(run.steps[0].status == StepStatus::cancelled);
  CHECK(run.steps[0].attempts == 1);
  CHECK(tools.slow_saw_cancel == 1);
  REQUIRE(run.error.has_value());
  CHECK(run.error->code == "cancelled");
  CHECK(run.error->message == "step \"slow\" was cancelled");
  CHECK(sleep.delays.empty());

  // a run cancelled before it starts runs nothing
  RunResult none = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(none.status == RunStatus::cancelled);
  CHECK(none.steps.empty());
  CHECK(none.failed_step.empty());
  CHECK(contains(none.error->message, "cancelled before step \"slow\""));
}

TEST_CASE("executor: cancel during a backoff wait wakes it promptly") {
  Tools tools;
  tools.flaky_failures = 1000;
  RunOptions options;  // the real, interruptible wait
  options.max_retries = 1;
  options.backoff = Backoff(Backoff::Kind::fixed, 120s);  // far longer than this test may take
  Pipeline p = pipeline_of(R"([{"id":"call","uses":"test.flaky"}])");
  Json params = parse("{}");
  CancelToken token;
  std::atomic<bool> waiting{false};
  StepObserver observer;
  observer.retrying = [&](const StepResult&, std::chrono::milliseconds d) {
    CHECK(d == 120s);
    waiting = true;
  };
  std::thread canceller([&] {
    CHECK(wait_until(waiting));
    token.cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  RunResult run = run_pipeline(p, params, nullptr, tools.view(), options, token, observer);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  canceller.join();
  CHECK(elapsed < 100s);  // woke on cancel; without it the wait alone is 120 s
  CHECK(run.status == RunStatus::cancelled);
  REQUIRE(run.steps.size() == 1);
  CHECK(run.steps[0].status == StepStatus::cancelled);
  CHECK(run.steps[0].attempts == 1);
  CHECK(tools.flaky_calls == 1);  // no second attempt after the cancel
}

TEST_CASE("executor: events in the scope, tool logs, and the JSON form of results") {
  Tools tools;
  RecordingSleep sleep;
  RunOptions options = quick_options(sleep);
  Pipeline p = pipeline_of(R"([
    {"id":"e","uses":"test.echo","with":{"k":"${event.payload.k}","t":"${event.topic}"},
     "if":"event.payload.n > 5"},
    {"id":"l","uses":"test.log"}
  ])");
  Json params = parse("{}");
  Json event = parse(R"({"topic":"orders.created","payload":{"k":"v","n":7}})");
  CancelToken token;
  std::vector<std::string> logs;
  StepObserver observer;
  observer.log = [&](const StepResult& s, std::string_view level, std::string_view message) {
    logs.push_back(s.id + " " + std::string(level) + " " + std::string(message));
  };
  RunResult run = run_pipeline(p, params, &event, tools.view(), options, token, observer);
  REQUIRE(run.status == RunStatus::succeeded);
  CHECK(dump(run.steps[0].output) == R"({"k":"v","t":"orders.created"})");
  CHECK(logs == std::vector<std::string>{"l info hello from the tool"});

  Json j = to_json(run);
  CHECK(dump(j) ==
        R"({"status":"succeeded","failed_step":"","error":null,"steps":[)"
        R"({"id":"e","uses":"test.echo","status":"succeeded","attempts":1,"started_at_ms":1796205600000,)"
        R"("duration_ms":)" +
            std::to_string(run.steps[0].duration_ms) +
            R"(,"input":{"k":"v","t":"orders.created"},"output":{"k":"v","t":"orders.created"},"error":null},)"
            R"({"id":"l","uses":"test.log","status":"succeeded","attempts":1,"started_at_ms":1796205600000,)"
            R"("duration_ms":)" +
            std::to_string(run.steps[1].duration_ms) + R"(,"input":{},"output":{},"error":null}]})");
  CHECK(dump(steps_to_json(run)) == dump(j["steps"]));
  CHECK(dump(to_json(run.steps[1])) == dump(j["steps"][1]));

  // without an event, ${event...} fails the step with a clear message
  run = run_pipeline(p, params, nullptr, tools.view(), options, token, {});
  CHECK(run.steps[0].status == StepStatus::skipped);  // the condition reads null
  Pipeline q = pipeline_of(R"([{"id":"e","uses":"test.echo","with":{"k":"${event.payload.k}"}}])");
  run = run_pipeline(q, params, nullptr, tools.view(), options, token, {});
  CHECK(run.status == RunStatus::failed);
  CHECK(contains(run.steps[0].error->message, "there is no event"));
  Json failed = to_json(run);
  CHECK(std::string(failed["status"].GetString()) == "failed");
  CHECK(std::string(failed["error"]["code"].GetString()) == "template_error");
  CHECK(std::string(failed["steps"][0]["error"]["pointer"].GetString()) == "/with/k");
}

TEST_CASE("format_rfc3339_ms") {
  CHECK(format_rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339_ms(1796205600123) == "2026-12-02T10:00:00.123Z");
  CHECK(format_rfc3339_ms(951782400000) == "2000-02-29T00:00:00.000Z");
  CHECK(format_rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
}
