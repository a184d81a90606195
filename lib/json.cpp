// JSON helpers and JSON Schema validation with messages that name the pointer
// and the reason. RapidJSON 1.1.0 reports only the failing keyword and
// pointers; explain() turns those into a sentence by looking at the schema and
// the instance.
#define RAPIDJSON_SCHEMA_USE_STDREGEX 1  // ECMAScript regexes, as JSON Schema specifies
#define RAPIDJSON_SCHEMA_USE_INTERNALREGEX 0

#include "ordinaut/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fmt/format.h>

#include <regex>

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace json {

Result<Json> parse(std::string_view text) {
  Json doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    const std::size_t offset = doc.GetErrorOffset();
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    Error e = make_error("invalid_json",
                         fmt::format("line {}, column {} (offset {}): {}", line, column, offset,
                                     rapidjson::GetParseError_En(doc.GetParseError())));
    return e;
  }
  return doc;
}

std::string dump(const JsonValue& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string dump_pretty(const JsonValue& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
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
  for (char ch : text) {
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
        } else {
          out += ch;
        }
    }
  }
  return out;
}

}  // namespace json

namespace {

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
  if (const JsonValue* custom = member("x-error"); custom != nullptr && custom->IsString() &&
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
  } else if (keyword == "additionalProperties" && instance != nullptr && instance->IsObject()) {
    const JsonValue* props = member("properties");
    const JsonValue* patterns = member("patternProperties");
    for (auto& m : instance->GetObject()) {
      bool known = props != nullptr && props->IsObject() && props->HasMember(m.name);
      if (!known && patterns != nullptr && patterns->IsObject()) {
        for (auto& p : patterns->GetObject()) {
          try {
            if (std::regex_search(std::string(m.name.GetString()), std::regex(p.name.GetString()))) known = true;
          } catch (const std::regex_error&) {
          }
        }
      }
      if (!known) {
        pointer += "/";
        pointer += m.name.GetString();
        reason = fmt::format("property \"{}\" is not allowed", m.name.GetString());
        break;
      }
    }
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
  Json source;
  std::unique_ptr<rapidjson::SchemaDocument> compiled;
};

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
  try {
    impl->compiled = std::make_unique<rapidjson::SchemaDocument>(impl->source);
  } catch (const std::exception& e) {  // std::regex_error for a bad "pattern"
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

Result<void> JsonSchema::validate(const JsonValue& instance) const {
  rapidjson::SchemaValidator validator(*impl_->compiled);
  if (instance.Accept(validator)) return {};
  return explain(impl_->source, instance, validator.GetInvalidSchemaPointer(),
                 validator.GetInvalidSchemaKeyword(), validator.GetInvalidDocumentPointer());
}

const JsonValue& JsonSchema::document() const { return impl_->source; }

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
