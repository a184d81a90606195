// JSON helpers and JSON Schema validation with messages that name the pointer
// and the reason. RapidJSON 1.1.0 reports only the failing keyword and
// pointers; explain() turns those into a sentence by looking at the schema and
// the instance.
// ECMAScript regexes (std::regex), as JSON Schema specifies. RapidJSON 1.1.0
// reads these macros backwards: defining INTERNALREGEX (to any value) turns the
// internal engine off, and defining STDREGEX (to any value) turns std::regex
// *off* too, which silently ignored every "pattern". So define only this one.
// Every file that includes rapidjson/schema.h must do the same (ODR).
#define RAPIDJSON_SCHEMA_USE_INTERNALREGEX 0

#include "ordinaut/json.hpp"

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/pointer.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <regex>
#include <unordered_set>
#include <vector>

#include "core/strings.hpp"


namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {
constexpr std::size_t kMaxJsonDepth = 512;
constexpr std::size_t kMaxPatternInput = 1024;
constexpr std::size_t kValidatorPoolSize = 16;  // per schema; more concurrent callers construct their own
}  // namespace

namespace json {

namespace {

// Why a parse stopped when RapidJSON's reader did not decide it itself.
enum class Refusal { none, too_deep, duplicate_key, lone_surrogate, number_too_big };

// A SAX handler between RapidJSON's reader and the document it builds. It
// refuses, at the byte where they occur:
//  - nesting deeper than kMaxJsonDepth: the reader, the DOM's destructor and
//    the writer all recurse, so a body of a million '[' would exhaust the
//    stack. The reader calls StartArray/StartObject before it recurses, so
//    refusing there bounds the recursion too;
//  - a key that occurs twice in one object: JavaScript's JSON.parse keeps the
//    last, RapidJSON's FindMember the first; the two must never disagree about
//    what a body means;
//  - a \uDC00-style escape of a lone UTF-16 surrogate, which RapidJSON 1.1.0
//    decodes to bytes that are not UTF-8 (invalid raw bytes are refused by
//    kParseValidateEncodingFlag).
// It also converts numbers itself (kParseNumbersAsStringsFlag): RapidJSON
// 1.1.0's full-precision strtod calls __builtin_clzll(0) for a zero with a
// large exponent ("0e300", found by tests/fuzz), which is undefined and can
// yield a power of two instead of 0. glibc's strtod rounds correctly.
class GuardedHandler {
 public:
  using Stream = rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream>;
  using Builder = Json;  // the document's own SAX interface

  GuardedHandler(Builder& out, const Stream& in) : out_(out), in_(in) {}

  bool Null() { return out_.Null(); }
  bool Bool(bool b) { return out_.Bool(b); }
  bool Int(int i) { return out_.Int(i); }
  bool Uint(unsigned u) { return out_.Uint(u); }
  bool Int64(std::int64_t i) { return out_.Int64(i); }
  bool Uint64(std::uint64_t u) { return out_.Uint64(u); }
  bool Double(double d) { return out_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool /*copy*/) {
    // Integers as RapidJSON types them: 32-bit when they fit, else 64-bit.
    const std::string_view text(s, n);
    const bool minus = !text.empty() && text.front() == '-';
    const std::string_view digits = minus ? text.substr(1) : text;
    if (digits.find_first_of(".eE") == std::string_view::npos) {
      std::uint64_t value = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (ec == std::errc() && end == digits.data() + digits.size()) {
        if (!minus) return value <= 0xFFFFFFFFu ? out_.Uint(static_cast<unsigned>(value)) : out_.Uint64(value);
        if (value <= 0x80000000u) return out_.Int(static_cast<int>(-static_cast<std::int64_t>(value)));
        if (value <= 0x8000000000000000u) return out_.Int64(static_cast<std::int64_t>(0 - value));
      }
    }
    char small[64];
    std::string large;
    const char* nul_terminated = small;
    if (n < sizeof small) {
      std::memcpy(small, s, n);
      small[n] = '\0';
    } else {
      large.assign(s, n);
      nul_terminated = large.c_str();
    }
    const double d = std::strtod(nul_terminated, nullptr);
    if (std::isinf(d)) {
      refuse(Refusal::number_too_big, in_.Tell() - n);
      return false;
    }
    return out_.Double(d);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return valid_surrogates(s, n) && out_.String(s, n, copy);
  }
  bool StartObject() {
    if (!enter()) return false;
    levels_.push_back(Level{keys_.size(), nullptr});
    return out_.StartObject();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (!valid_surrogates(s, n)) return false;
    if (!remember_key(std::string_view(s, n))) {
      refuse(Refusal::duplicate_key, in_.Tell());
      duplicate_.assign(s, n);
      return false;
    }
    return out_.Key(s, n, copy);
  }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    keys_.resize(levels_.back().first_key);
    levels_.pop_back();
    return out_.EndObject(members);
  }
  bool StartArray() { return enter() && out_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return out_.EndArray(elements);
  }

  Refusal refusal() const { return refusal_; }
  std::size_t refusal_offset() const { return refusal_offset_; }
  const std::string& duplicate() const { return duplicate_; }

 private:
  // Objects with more keys than this look duplicates up in a hash set.
  static constexpr std::size_t kLinearKeys = 16;
  struct Level {
    std::size_t first_key;  // index in keys_ of this object's first key
    std::unique_ptr<std::unordered_set<std::string>> many;
  };

  bool enter() {
    if (++depth_ <= kMaxJsonDepth) return true;
    refuse(Refusal::too_deep, in_.Tell() - 1);  // the bracket just read
    return false;
  }

  // False when `key` is already a key of the innermost object.
  bool remember_key(std::string_view key) {
    Level& level = levels_.back();
    if (level.many) return level.many->emplace(key).second;
    for (std::size_t i = level.first_key; i < keys_.size(); ++i) {
      if (keys_[i] == key) return false;
    }
    keys_.emplace_back(key);
    if (keys_.size() - level.first_key > kLinearKeys) {
      level.many = std::make_unique<std::unordered_set<std::string>>(
          std::make_move_iterator(keys_.begin() + static_cast<std::ptrdiff_t>(level.first_key)),
          std::make_move_iterator(keys_.end()));
      keys_.resize(level.first_key);
    }
    return true;
  }

  // UTF-8 of a surrogate code point: ED A0..BF xx.
  bool valid_surrogates(const char* s, std::size_t n) {
    for (const char* p = static_cast<const char*>(std::memchr(s, '\xED', n)); p != nullptr;
         p = static_cast<const char*>(std::memchr(p + 1, '\xED', n - static_cast<std::size_t>(p + 1 - s)))) {
      if (p + 1 < s + n && static_cast<unsigned char>(p[1]) >= 0xA0) {
        refuse(Refusal::lone_surrogate, in_.Tell());
        return false;
      }
    }
    return true;
  }

  void refuse(Refusal why, std::size_t offset) {
    refusal_ = why;
    refusal_offset_ = offset;
  }

  Builder& out_;
  const Stream& in_;
  std::size_t depth_ = 0;
  std::vector<Level> levels_;
  std::vector<std::string> keys_;  // keys of the open objects without a set, innermost last
  Refusal refusal_ = Refusal::none;
  std::size_t refusal_offset_ = 0;
  std::string duplicate_;
};

Error parse_error(std::string_view text, std::size_t offset, std::string_view reason) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  Error e = make_error("invalid_json", fmt::format("line {}, column {} (offset {}): {}", line, column, offset, reason));
  e.offset = offset;
  e.line = line;
  e.column = column;
  return e;
}

}  // namespace

Result<void> parse_into(Json& doc, std::string_view text) {
  rapidjson::MemoryStream memory(text.data(), text.size());
  GuardedHandler::Stream in(memory);
  rapidjson::Reader reader;
  bool parsed = false;
  Error doc_error;
  auto generate = [&](Json& builder) {
    GuardedHandler handler(builder, in);
    constexpr unsigned kFlags = rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseValidateEncodingFlag;
    parsed = !reader.Parse<kFlags>(in, handler).IsError();
    if (parsed) return true;
    const std::size_t offset = reader.GetErrorOffset();
    switch (handler.refusal()) {
      case Refusal::too_deep:
        doc_error = parse_error(text, handler.refusal_offset(),
                                fmt::format("nesting deeper than {} levels", kMaxJsonDepth));
        break;
      case Refusal::duplicate_key:
        doc_error = parse_error(text, handler.refusal_offset(),
                                fmt::format("duplicate key \"{}\" in one object", escape(handler.duplicate())));
        break;
      case Refusal::number_too_big:
        doc_error = parse_error(text, handler.refusal_offset(), "Number too big to be stored in double.");
        break;
      case Refusal::lone_surrogate:
        // Raw bytes of a surrogate are invalid UTF-8 at their own offset;
        // otherwise an escape in the string just read produced them.
        if (const std::size_t bad = detail::first_invalid_utf8(text.substr(0, handler.refusal_offset()));
            bad != std::string_view::npos) {
          doc_error = parse_error(text, bad, fmt::format("invalid UTF-8 at offset {}", bad));
        } else {
          doc_error = parse_error(text, handler.refusal_offset(),
                                  "a \\u escape encodes a lone UTF-16 surrogate, which is not a Unicode character");
        }
        break;
      case Refusal::none:
        if (reader.GetParseErrorCode() == rapidjson::kParseErrorStringInvalidEncoding) {
          // The reader stops after the bad sequence; name its first byte.
          const std::size_t bad = std::min(detail::first_invalid_utf8(text), offset);
          doc_error = parse_error(text, bad, fmt::format("invalid UTF-8 at offset {}", bad));
        } else {
          doc_error = parse_error(text, offset, rapidjson::GetParseError_En(reader.GetParseErrorCode()));
        }
        break;
    }
    return false;
  };
  doc.Populate(generate);
  if (!parsed) {
    doc.SetNull();
    return doc_error;
  }
  return {};
}

Result<Json> parse(std::string_view text) {
  Json doc;
  if (auto parsed = parse_into(doc, text); !parsed) return parsed.error();
  return doc;
}

namespace {

// Output is always UTF-8: parse() refuses invalid input, but a value may also
// be built from other bytes (a path, a header, a file name). The writer copies
// string bytes as they are, and outside strings it writes only ASCII, so each
// invalid byte can be replaced by U+FFFD in the text.
std::string valid_utf8(const char* text, std::size_t size) {
  std::string_view rest(text, size);
  std::size_t bad = detail::first_invalid_utf8(rest);
  if (bad == std::string_view::npos) return std::string(rest);
  std::string out;
  out.reserve(size + 16);
  while (bad != std::string_view::npos) {
    out.append(rest.substr(0, bad));
    out += "\xEF\xBF\xBD";
    rest.remove_prefix(bad + 1);
    bad = detail::first_invalid_utf8(rest);
  }
  out.append(rest);
  return out;
}

}  // namespace

std::string dump(const JsonValue& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return valid_utf8(buffer.GetString(), buffer.GetSize());
}

std::string dump_pretty(const JsonValue& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  value.Accept(writer);
  return valid_utf8(buffer.GetString(), buffer.GetSize());
}

Json copy(const JsonValue& value) {
  Json doc;
  doc.CopyFrom(value, doc.GetAllocator());
  return doc;
}

Json object() {
  Json doc;
  doc.SetObject();
  return doc;
}

const char* type_name(const JsonValue& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType: return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType: return "boolean";
    case rapidjson::kObjectType: return "object";
    case rapidjson::kArrayType: return "array";
    case rapidjson::kStringType: return "string";
    case rapidjson::kNumberType: return value.IsInt64() || value.IsUint64() ? "integer" : "number";
  }
  return "unknown";
}

std::optional<std::string_view> get_string(const JsonValue& object, std::string_view key) {
  if (!object.IsObject()) return std::nullopt;
  auto it = object.FindMember(rapidjson::StringRef(key.data(), key.size()));
  if (it == object.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string_view(it->value.GetString(), it->value.GetStringLength());
}

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else if (c < 0x80) {
          out += ch;
        } else if (detail::first_invalid_utf8(text.substr(i, 4)) == 0) {
          out += "\\ufffd";  // output is always UTF-8: a byte that is not becomes U+FFFD
        } else {
          const std::size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
          out.append(text.substr(i, length));
          i += length - 1;
        }
    }
  }
  return out;
}

}  // namespace json

namespace {

constexpr const char* kNoAdditional = "x-ordinaut-no-additional";
constexpr const char* kPatternLimit = "x-ordinaut-pattern-limit";

std::string pointer_text(const rapidjson::Pointer& pointer) {
  rapidjson::StringBuffer plain;
  pointer.Stringify(plain);
  return std::string(plain.GetString(), plain.GetSize());
}

std::string short_value(const JsonValue& v) {
  std::string text = json::dump(v);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string join_enum(const JsonValue& list) {
  std::string out;
  for (auto& item : list.GetArray()) {
    if (!out.empty()) out += ", ";
    out += item.IsString() ? std::string(item.GetString(), item.GetStringLength()) : json::dump(item);
  }
  return out;
}

// Builds the error for a failed validation: pointer of the offending value and
// a reason that names what was expected.
Error explain(const JsonValue& schema_root, const JsonValue& instance_root,
              const rapidjson::Pointer& schema_ptr, std::string_view keyword,
              const rapidjson::Pointer& instance_ptr) {
  const JsonValue* schema = schema_ptr.Get(schema_root);
  const JsonValue* instance = instance_ptr.Get(instance_root);
  std::string pointer = pointer_text(instance_ptr);
  std::string reason;

  auto member = [&](const char* name) -> const JsonValue* {
    if (schema == nullptr || !schema->IsObject()) return nullptr;
    auto it = schema->FindMember(name);
    return it == schema->MemberEnd() ? nullptr : &it->value;
  };
  if (keyword == "maxLength" && member(kPatternLimit) != nullptr && instance != nullptr && instance->IsString()) {
    reason = fmt::format("a string of {} characters is longer than {}, the limit for strings matched against a "
                         "pattern",
                         instance->GetStringLength(), kMaxPatternInput);
  } else if (const JsonValue* custom = member("x-error"); custom != nullptr && custom->IsString() &&
                                                   keyword != "required" && keyword != "additionalProperties") {
    reason = custom->GetString();
  } else if (keyword == "required" && instance != nullptr && instance->IsObject()) {
    if (const JsonValue* req = member("required"); req != nullptr && req->IsArray()) {
      for (auto& name : req->GetArray()) {
        if (name.IsString() && !instance->HasMember(name.GetString())) {
          pointer += "/";
          pointer += name.GetString();
          reason = fmt::format("required property \"{}\" is missing", name.GetString());
          break;
        }
      }
    }
  } else if (keyword == "additionalProperties" || (keyword == "not" && member(kNoAdditional) != nullptr)) {
    // RapidJSON appends the key before checking it: the pointer ends with the
    // offending property.
    const std::size_t n = instance_ptr.GetTokenCount();
    const std::string name = n > 0 ? std::string(instance_ptr.GetTokens()[n - 1].name,
                                                 instance_ptr.GetTokens()[n - 1].length)
                                   : std::string();
    reason = fmt::format("property \"{}\" is not allowed", name);
  } else if (keyword == "type" && instance != nullptr) {
    std::string expected;
    if (const JsonValue* t = member("type"); t != nullptr) {
      expected = t->IsString() ? t->GetString() : join_enum(*t);
    }
    reason = fmt::format("expected {}, got {}", expected, json::type_name(*instance));
  } else if (keyword == "enum" && instance != nullptr) {
    if (const JsonValue* e = member("enum"); e != nullptr && e->IsArray()) {
      reason = fmt::format("{} is not one of {}", short_value(*instance), join_enum(*e));
    }
  } else if (keyword == "pattern" && instance != nullptr) {
    if (const JsonValue* p = member("pattern"); p != nullptr && p->IsString()) {
      reason = fmt::format("{} does not match the pattern {}", short_value(*instance), p->GetString());
    }
  } else if ((keyword == "minLength" || keyword == "maxLength" || keyword == "minimum" ||
              keyword == "maximum" || keyword == "minItems" || keyword == "maxItems" ||
              keyword == "minProperties" || keyword == "maxProperties" || keyword == "multipleOf") &&
             instance != nullptr) {
    const JsonValue* limit = member(std::string(keyword).c_str());
    reason = fmt::format("{} violates {} {}", short_value(*instance), keyword,
                         limit != nullptr ? json::dump(*limit) : "?");
  } else if (keyword == "uniqueItems") {
    reason = "array items must be unique";
  }
  if (reason.empty()) {
    reason = fmt::format("value violates the schema keyword \"{}\" (schema {})", keyword,
                         pointer_text(schema_ptr).empty() ? "/" : pointer_text(schema_ptr));
  }
  Error e = make_error("schema_violation", fmt::format("{}: {}", pointer.empty() ? "/" : pointer, reason));
  e.pointer = pointer;
  return e;
}

}  // namespace

struct JsonSchema::Impl {
  Json source;           // as given, returned by document()
  Json compiled_source;  // what RapidJSON compiled (see prepare_schema)
  bool has_pattern_properties = false;
  // "enum" or "uniqueItems" somewhere: RapidJSON then hashes instance values,
  // and its hasher converts a double to a 64-bit integer (see validate()).
  bool hashes_values = false;
  // Validators ready for reuse: constructing one (and growing its stacks)
  // costs more than validating a small input. Taken and returned under the
  // mutex, so concurrent validations each use their own.
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<rapidjson::SchemaValidator>> pool;
  std::unique_ptr<rapidjson::SchemaDocument> compiled;
};

namespace {

// Prepares a schema for RapidJSON 1.1.0 and returns the pointer of a bad
// regular expression, if any (RapidJSON would silently ignore it).
//  - It validates the value of a key matched only by "patternProperties"
//    against a stale schema when "additionalProperties" is false. {"not": {}}
//    means the same and takes a code path without that bug; the marker lets
//    explain() word the error as for additionalProperties.
//  - std::regex backtracks recursively, about 300 bytes of stack per
//    character: a string checked against a "pattern" is capped at
//    kMaxPatternInput characters (an added maxLength, marked for explain()),
//    and property names matched by "patternProperties" are checked in
//    validate().
std::optional<std::string> prepare_schema(JsonValue& schema, Json::AllocatorType& a, const std::string& at,
                                          bool& has_pattern_properties, bool& hashes_values) {
  if (!schema.IsObject()) return std::nullopt;
  auto check_regex = [](const char* text, std::size_t length) {
    try {
      std::regex re(text, length, std::regex_constants::ECMAScript);
      return true;
    } catch (const std::regex_error&) {
      return false;
    }
  };
  for (auto& m : schema.GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    const std::string here = at + "/" + std::string(key);
    std::optional<std::string> bad;
    if (key == "pattern" && m.value.IsString()) {
      if (!check_regex(m.value.GetString(), m.value.GetStringLength())) return here;
    } else if (key == "properties" || key == "patternProperties" || key == "definitions" || key == "dependencies") {
      if (m.value.IsObject()) {
        for (auto& sub : m.value.GetObject()) {
          const std::string sub_at = here + "/" + std::string(sub.name.GetString(), sub.name.GetStringLength());
          if (key == "patternProperties" && !check_regex(sub.name.GetString(), sub.name.GetStringLength())) {
            return sub_at;
          }
          if ((bad = prepare_schema(sub.value, a, sub_at, has_pattern_properties, hashes_values))) return bad;
        }
      }
    } else if (key == "items" || key == "allOf" || key == "anyOf" || key == "oneOf") {
      if (m.value.IsArray()) {
        for (rapidjson::SizeType i = 0; i < m.value.Size(); ++i) {
          if ((bad = prepare_schema(m.value[i], a, here + "/" + std::to_string(i), has_pattern_properties, hashes_values))) return bad;
        }
      } else if ((bad = prepare_schema(m.value, a, here, has_pattern_properties, hashes_values))) {
        return bad;
      }
    } else if (key == "additionalProperties" || key == "additionalItems" || key == "not") {
      if ((bad = prepare_schema(m.value, a, here, has_pattern_properties, hashes_values))) return bad;
    }
  }
  if (schema.HasMember("patternProperties")) has_pattern_properties = true;
  if (schema.HasMember("enum")) hashes_values = true;
  if (auto unique = schema.FindMember("uniqueItems"); unique != schema.MemberEnd() && unique->value.IsTrue()) {
    hashes_values = true;
  }
  if (auto pattern = schema.FindMember("pattern"); pattern != schema.MemberEnd() && pattern->value.IsString()) {
    auto max = schema.FindMember("maxLength");
    if (max == schema.MemberEnd() || !max->value.IsUint64() || max->value.GetUint64() > kMaxPatternInput) {
      if (max != schema.MemberEnd()) schema.RemoveMember(max);
      schema.AddMember("maxLength", static_cast<std::uint64_t>(kMaxPatternInput), a);
      schema.AddMember(rapidjson::StringRef(kPatternLimit), true, a);
    }
  }
  auto additional = schema.FindMember("additionalProperties");
  if (additional != schema.MemberEnd() && additional->value.IsFalse() && schema.HasMember("patternProperties")) {
    JsonValue replacement(rapidjson::kObjectType);
    replacement.AddMember("not", JsonValue(rapidjson::kObjectType), a);
    replacement.AddMember(rapidjson::StringRef(kNoAdditional), true, a);
    additional->value = replacement;
  }
  return std::nullopt;
}

}  // namespace

JsonSchema::JsonSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonSchema::JsonSchema(JsonSchema&&) noexcept = default;
JsonSchema& JsonSchema::operator=(JsonSchema&&) noexcept = default;
JsonSchema::~JsonSchema() = default;

Result<JsonSchema> JsonSchema::compile(const JsonValue& schema) {
  if (!schema.IsObject() && !schema.IsBool()) {
    return make_error("invalid_schema", fmt::format("a JSON Schema must be an object or a boolean, got {}",
                                                    json::type_name(schema)));
  }
  auto impl = std::make_unique<Impl>();
  if (schema.IsBool()) {
    // draft-04 has no boolean schemas: true = {}, false = {"not": {}}.
    impl->source.SetObject();
    if (!schema.GetBool()) {
      JsonValue empty(rapidjson::kObjectType);
      impl->source.AddMember("not", empty, impl->source.GetAllocator());
    }
  } else {
    impl->source.CopyFrom(schema, impl->source.GetAllocator());
  }
  impl->compiled_source.CopyFrom(impl->source, impl->compiled_source.GetAllocator());
  if (auto bad = prepare_schema(impl->compiled_source, impl->compiled_source.GetAllocator(), "",
                                impl->has_pattern_properties, impl->hashes_values)) {
    return make_error("invalid_schema", fmt::format("schema {}: not a valid ECMAScript regular expression", *bad));
  }
  try {
    impl->compiled = std::make_unique<rapidjson::SchemaDocument>(impl->compiled_source);
  } catch (const std::exception& e) {
    return make_error("invalid_schema", fmt::format("schema could not be compiled: {}", e.what()));
  }
  return JsonSchema(std::move(impl));
}

Result<JsonSchema> JsonSchema::compile(std::string_view schema_text) {
  auto doc = json::parse(schema_text);
  if (!doc) {
    Error e = doc.error();
    e.code = "invalid_schema";
    e.message = "schema is not valid JSON: " + e.message;
    return e;
  }
  return compile(static_cast<const JsonValue&>(doc.value()));
}

namespace {

// Appends "/" and a member name escaped as a JSON Pointer token (RFC 6901).
void append_pointer_token(std::string& pointer, const JsonValue& name) {
  pointer += '/';
  pointer += json::pointer_token(std::string_view(name.GetString(), name.GetStringLength()));
}

// First object (by pointer) holding a property name too long for a
// patternProperties regex; false when there is none.
bool find_long_name(const JsonValue& v, std::string& pointer, std::size_t& length) {
  if (v.IsObject()) {
    for (auto& m : v.GetObject()) {
      if (m.name.GetStringLength() > kMaxPatternInput) {
        length = m.name.GetStringLength();
        return true;
      }
    }
    for (auto& m : v.GetObject()) {
      const std::size_t size = pointer.size();
      append_pointer_token(pointer, m.name);
      if (find_long_name(m.value, pointer, length)) return true;
      pointer.resize(size);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      const std::size_t size = pointer.size();
      pointer += '/' + std::to_string(i);
      if (find_long_name(v[i], pointer, length)) return true;
      pointer.resize(size);
    }
  }
  return false;
}

// RapidJSON 1.1.0 hashes the values it checks against "enum" and
// "uniqueItems", and its hasher converts every double to int64_t (negative)
// or uint64_t: undefined behaviour outside those ranges. Such a number is
// refused before RapidJSON sees it. True with its pointer when one is found.
bool find_unhashable_number(const JsonValue& v, std::string& pointer, double& number) {
  if (v.IsDouble()) {
    const double d = v.GetDouble();
    // -2^63 and 2^64 are exact doubles; NaN fails both comparisons.
    if (!(d >= -9223372036854775808.0 && d < 18446744073709551616.0)) {
      number = d;
      return true;
    }
  } else if (v.IsObject()) {
    for (auto& m : v.GetObject()) {
      const std::size_t size = pointer.size();
      append_pointer_token(pointer, m.name);
      if (find_unhashable_number(m.value, pointer, number)) return true;
      pointer.resize(size);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      const std::size_t size = pointer.size();
      pointer += '/' + std::to_string(i);
      if (find_unhashable_number(v[i], pointer, number)) return true;
      pointer.resize(size);
    }
  }
  return false;
}

}  // namespace

Result<void> JsonSchema::validate(const JsonValue& instance) const {
  if (impl_->has_pattern_properties) {
    std::string pointer;
    std::size_t length = 0;
    if (find_long_name(instance, pointer, length)) {
      Error e = make_error("schema_violation",
                           fmt::format("{}: a property name of {} characters is longer than {}, the limit for names "
                                       "matched against patternProperties",
                                       pointer.empty() ? "/" : pointer, length, kMaxPatternInput));
      e.pointer = pointer;
      return e;
    }
  }
  if (impl_->hashes_values) {
    std::string pointer;
    double number = 0;
    if (find_unhashable_number(instance, pointer, number)) {
      Error e = make_error("schema_violation",
                           fmt::format("{}: the number {} is out of the range this schema can check: with \"enum\" "
                                       "or \"uniqueItems\" in the schema, numbers must lie in [-2^63, 2^64)",
                                       pointer.empty() ? "/" : pointer, number));
      e.pointer = pointer;
      return e;
    }
  }
  std::unique_ptr<rapidjson::SchemaValidator> validator;
  {
    std::lock_guard lock(impl_->pool_mutex);
    if (!impl_->pool.empty()) {
      validator = std::move(impl_->pool.back());
      impl_->pool.pop_back();
    }
  }
  if (!validator) validator = std::make_unique<rapidjson::SchemaValidator>(*impl_->compiled);
  Result<void> result;
  try {
    if (!instance.Accept(*validator)) {
      result = explain(impl_->compiled_source, instance, validator->GetInvalidSchemaPointer(),
                       validator->GetInvalidSchemaKeyword(), validator->GetInvalidDocumentPointer());
    }
  } catch (const std::exception& e) {  // std::regex gives up on some inputs (error_complexity)
    return make_error("schema_violation", fmt::format("/: the value could not be checked: {}", e.what()));
  }
  validator->Reset();
  std::lock_guard lock(impl_->pool_mutex);
  if (impl_->pool.size() < kValidatorPoolSize) impl_->pool.push_back(std::move(validator));
  return result;
}

const JsonValue& JsonSchema::document() const { return impl_->source; }

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
