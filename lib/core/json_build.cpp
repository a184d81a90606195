// JSON building (json::Init, object, array, set, push, add_detail) and typed
// reading by JSON pointer (find, get, get_or): the helpers of json.hpp that
// spare extension code RapidJSON's allocator plumbing.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "ordinaut/json.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {
namespace json {

namespace {

JsonValue string_value(std::string_view text, Json::AllocatorType& allocator) {
  return JsonValue(text.data(), static_cast<rapidjson::SizeType>(text.size()), allocator);
}

Error field_error(std::string_view pointer, std::string message) {
  Error e = make_error("invalid_field", std::move(message));
  e.pointer = std::string(pointer);
  return e;
}

// "/a/b" as shown in messages; the root is "/".
std::string shown(std::string_view pointer) { return pointer.empty() ? "/" : std::string(pointer); }

Error wrong_type(std::string_view pointer, const char* wanted, const JsonValue& v) {
  return field_error(pointer, fmt::format("{} must be {}, got {}", shown(pointer), wanted, type_name(v)));
}

// Unescapes one reference token; false when it holds a "~" not followed by 0 or 1.
bool unescape_token(std::string_view token, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] != '~') {
      out += token[i];
      continue;
    }
    if (i + 1 >= token.size() || (token[i + 1] != '0' && token[i + 1] != '1')) return false;
    out += token[i + 1] == '0' ? '~' : '/';
    ++i;
  }
  return true;
}

// An array index token: digits, no leading zero (RFC 6901).
std::optional<rapidjson::SizeType> index_of(std::string_view token) {
  if (token.empty() || token.size() > 9 || (token.size() > 1 && token[0] == '0')) return std::nullopt;
  rapidjson::SizeType n = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<rapidjson::SizeType>(c - '0');
  }
  return n;
}

template <typename T>
Result<T> integer_at(std::string_view pointer, const JsonValue& v) {
  if (!(v.IsInt64() || v.IsUint64())) {
    if (v.IsDouble() && std::isfinite(v.GetDouble()) && v.GetDouble() == std::floor(v.GetDouble())) {
      return field_error(pointer, fmt::format("{}: {} does not fit in a 64-bit integer", shown(pointer), v.GetDouble()));
    }
    return wrong_type(pointer, "an integer", v);
  }
  if (v.IsInt64()) {
    const std::int64_t n = v.GetInt64();
    if (n < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        (std::is_signed_v<T> && n > static_cast<std::int64_t>(std::numeric_limits<T>::max())) ||
        (!std::is_signed_v<T> && n < 0)) {
      return field_error(pointer, fmt::format("{}: {} does not fit in {}", shown(pointer), n,
                                              std::is_signed_v<T> ? (sizeof(T) == 4 ? "int" : "int64") : "uint64"));
    }
    return static_cast<T>(n);
  }
  const std::uint64_t n = v.GetUint64();
  if (n > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
    return field_error(pointer, fmt::format("{}: {} does not fit in {}", shown(pointer), n,
                                            std::is_signed_v<T> ? (sizeof(T) == 4 ? "int" : "int64") : "uint64"));
  }
  return static_cast<T>(n);
}

}  // namespace

// ---- building ------------------------------------------------------------------

JsonValue Init::build(Json::AllocatorType& allocator) const {
  switch (kind_) {
    case Kind::null: return JsonValue(rapidjson::kNullType);
    case Kind::boolean: return JsonValue(b_);
    case Kind::int64: return JsonValue(static_cast<std::int64_t>(i_));
    case Kind::uint64: return JsonValue(static_cast<std::uint64_t>(u_));
    case Kind::number: return JsonValue(d_);
    case Kind::string: return string_value(s_, allocator);
    case Kind::value: return JsonValue(*v_, allocator);
  }
  return JsonValue(rapidjson::kNullType);
}

void set(JsonValue& object, std::string_view key, const Init& value, Json::AllocatorType& allocator) {
  JsonValue built = value.build(allocator);
  auto it = object.FindMember(rapidjson::StringRef(key.data(), key.size()));
  if (it != object.MemberEnd()) {
    it->value = std::move(built);
    return;
  }
  object.AddMember(string_value(key, allocator), built, allocator);
}

void set(Json& doc, std::string_view key, const Init& value) { set(doc, key, value, doc.GetAllocator()); }

void push(JsonValue& array, const Init& value, Json::AllocatorType& allocator) {
  array.PushBack(value.build(allocator), allocator);
}

void push(Json& doc, const Init& value) { push(doc, value, doc.GetAllocator()); }

Json object(std::initializer_list<std::pair<std::string_view, Init>> members) {
  Json doc;
  doc.SetObject();
  for (const auto& [key, value] : members) set(doc, key, value);
  return doc;
}

Json array(std::initializer_list<Init> items) {
  Json doc;
  doc.SetArray();
  doc.Reserve(static_cast<rapidjson::SizeType>(items.size()), doc.GetAllocator());
  for (const auto& item : items) push(doc, item);
  return doc;
}

// Error::details as an object: {} when empty or not an object.
static Json details_of(const Error& error) {
  if (!error.details.empty()) {
    if (auto parsed = parse(error.details); parsed && parsed->IsObject()) return std::move(parsed).value();
  }
  return object();
}

void add_detail(Error& error, std::string_view key, const Init& value) {
  Json details = details_of(error);
  set(details, key, value);
  error.details = dump(details);
}

Json error_details(const Error& error) {
  Json details = details_of(error);
  auto put = [&](std::string_view key, const Init& value) {
    if (!details.HasMember(rapidjson::StringRef(key.data(), key.size()))) set(details, key, value);
  };
  put("code", error.code);
  if (!error.pointer.empty()) put("pointer", error.pointer);
  if (error.offset) {
    put("offset", static_cast<std::uint64_t>(*error.offset));
    put("line", static_cast<std::uint64_t>(error.line));
    put("column", static_cast<std::uint64_t>(error.column));
  }
  return details;
}

// ---- reading -------------------------------------------------------------------

const JsonValue* find(const JsonValue& root, std::string_view pointer) {
  const JsonValue* at = &root;
  std::string token;
  while (!pointer.empty()) {
    if (pointer[0] != '/') return nullptr;
    pointer.remove_prefix(1);
    const std::size_t end = pointer.find('/');
    const std::string_view raw = pointer.substr(0, end);
    pointer = end == std::string_view::npos ? std::string_view() : pointer.substr(end);
    if (!unescape_token(raw, token)) return nullptr;
    if (at->IsObject()) {
      auto it = at->FindMember(rapidjson::StringRef(token.data(), token.size()));
      if (it == at->MemberEnd()) return nullptr;
      at = &it->value;
    } else if (at->IsArray()) {
      auto index = index_of(token);
      if (!index || *index >= at->Size()) return nullptr;
      at = &(*at)[*index];
    } else {
      return nullptr;
    }
  }
  return at;
}

std::string pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

template <typename T>
Result<T> get(const JsonValue& root, std::string_view pointer) {
  const JsonValue* v = find(root, pointer);
  if (v == nullptr) return field_error(pointer, fmt::format("{} is required", shown(pointer)));
  if constexpr (std::is_same_v<T, const JsonValue*>) {
    return v;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v->IsBool()) return wrong_type(pointer, "a boolean", *v);
    return v->GetBool();
  } else if constexpr (std::is_same_v<T, double>) {
    if (!v->IsNumber()) return wrong_type(pointer, "a number", *v);
    return v->GetDouble();
  } else if constexpr (std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>) {
    if (!v->IsString()) return wrong_type(pointer, "a string", *v);
    return T(v->GetString(), v->GetStringLength());
  } else {
    return integer_at<T>(pointer, *v);
  }
}

template Result<bool> get<bool>(const JsonValue&, std::string_view);
template Result<int> get<int>(const JsonValue&, std::string_view);
template Result<std::int64_t> get<std::int64_t>(const JsonValue&, std::string_view);
template Result<std::uint64_t> get<std::uint64_t>(const JsonValue&, std::string_view);
template Result<double> get<double>(const JsonValue&, std::string_view);
template Result<std::string_view> get<std::string_view>(const JsonValue&, std::string_view);
template Result<std::string> get<std::string>(const JsonValue&, std::string_view);
template Result<const JsonValue*> get<const JsonValue*>(const JsonValue&, std::string_view);

}  // namespace json
}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
