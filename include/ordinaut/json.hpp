// JSON values, parsing with precise errors, and JSON Schema validation.
//
// Ordinaut uses RapidJSON documents as its JSON value type: `Json` owns its
// memory and is movable; `JsonValue` is a borrowed view into one. Parsing and
// validation report errors as values (`JsonError`) carrying a position or a
// JSON pointer, so that every message can name exactly what is wrong.
//
// Thread safety: a `JsonSchema` is immutable after construction and may be used
// to validate from many threads at once.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <rapidjson/document.h>

#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// A JSON document: owns its values and their memory; movable.
using Json = rapidjson::Document;
/// A JSON value borrowed from (and allocated by) some Json document.
using JsonValue = rapidjson::Value;

namespace json {

/// The one parse for untrusted text (bodies, manifests, event payloads, MCP).
/// Beyond JSON syntax it refuses nesting deeper than 512 levels (without
/// recursing deeper), a key repeated in one object (JSON.parse would keep the
/// last, RapidJSON lookups the first), and bytes that are not UTF-8. On failure
/// the error code is "invalid_json", Error::offset/line/column say where, and
/// the message starts with the same numbers, e.g. "line 1, column 9 (offset
/// 8): Missing a colon after a name of object member." or "line 1, column 7
/// (offset 6): invalid UTF-8 at offset 6".
Result<Json> parse(std::string_view text);

/// parse() into an existing document (e.g. one with its own allocator). On
/// failure `doc` is null.
Result<void> parse_into(Json& doc, std::string_view text);

/// Serialises a value compactly (no whitespace). The text is always valid
/// UTF-8: a string byte that is not (in a value built from raw bytes, never
/// from parse()) becomes U+FFFD.
std::string dump(const JsonValue& value);

/// Serialises a value with two-space indentation (UTF-8 as dump()).
std::string dump_pretty(const JsonValue& value);

/// Deep copy of `value` into a new document.
Json copy(const JsonValue& value);

/// Returns a new object document `{}`.
Json object();

/// Human-readable name of a value's JSON type: "object", "string", "integer", ...
const char* type_name(const JsonValue& value);

/// Convenience: a string member of an object, or nullopt when absent or not a string.
std::optional<std::string_view> get_string(const JsonValue& object, std::string_view key);

/// Escapes `text` for inclusion inside a JSON string literal (no quotes added).
/// A byte that is not part of valid UTF-8 becomes `\\ufffd`, so the result is
/// always valid UTF-8.
std::string escape(std::string_view text);

// ---- building values without allocator plumbing ------------------------------
//
//   Json doc = json::object({{"id", id}, {"count", 3}, {"ok", true},
//                            {"tags", json::array({"a", "b"})},
//                            {"owner", json::object({{"name", name}})},
//                            {"note", std::optional<std::string>{}}});   // null
//   json::set(doc, "count", 4);          // replaces the member
//   Json list = json::array({});
//   json::push(list, json::object({{"n", 1}}));
//
// Strings and nested values are copied into the new document, so temporaries
// (std::string, another Json) may be passed. RapidJSON stays available for
// everything else: a Json is a rapidjson::Document.

/// One value to build from: null, a bool, a number, a string, any existing
/// JsonValue (deep-copied; pass json::object()/json::array() results to nest),
/// or an optional of one of these (nullopt is null). It refers to its argument
/// until it is built, so use it only within one expression.
class Init {
 public:
  /// null.
  Init(std::nullptr_t) noexcept : kind_(Kind::null) {}  // NOLINT(google-explicit-constructor)
  /// true or false.
  Init(bool value) noexcept : kind_(Kind::boolean), b_(value) {}  // NOLINT(google-explicit-constructor)
  /// Any integer type but bool and char.
  template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  Init(T value) noexcept {  // NOLINT(google-explicit-constructor)
    if constexpr (std::is_signed_v<T>) {
      kind_ = Kind::int64;
      i_ = value;
    } else {
      kind_ = Kind::uint64;
      u_ = value;
    }
  }
  /// A number.
  Init(double value) noexcept : kind_(Kind::number), d_(value) {}  // NOLINT(google-explicit-constructor)
  /// A string (copied when built); a null pointer is null.
  Init(const char* text) noexcept : kind_(text ? Kind::string : Kind::null), s_(text ? text : "") {}  // NOLINT
  /// A string (copied when built).
  Init(std::string_view text) noexcept : kind_(Kind::string), s_(text) {}  // NOLINT(google-explicit-constructor)
  /// A string (copied when built).
  Init(const std::string& text) noexcept : kind_(Kind::string), s_(text) {}  // NOLINT(google-explicit-constructor)
  /// Any value, deep-copied when built (pass json::object()/array() to nest).
  Init(const JsonValue& value) noexcept : kind_(Kind::value), v_(&value) {}  // NOLINT(google-explicit-constructor)
  /// nullopt is null; otherwise the contained value.
  template <typename T>
  Init(const std::optional<T>& value) noexcept  // NOLINT(google-explicit-constructor)
      : Init(value ? Init(*value) : Init(nullptr)) {}
  /// Pointers other than const char* would silently become bools: refused.
  template <typename T>
  Init(T*) = delete;

  /// The value as a new JsonValue whose memory belongs to `allocator`.
  JsonValue build(Json::AllocatorType& allocator) const;

 private:
  enum class Kind { null, boolean, int64, uint64, number, string, value };
  Kind kind_;
  union {
    bool b_;
    std::int64_t i_;
    std::uint64_t u_;
    double d_;
  };
  std::string_view s_;
  const JsonValue* v_ = nullptr;
};

/// An object document from key-value pairs, in order. A repeated key keeps
/// its last value (like json::set), so the result never has duplicate keys.
Json object(std::initializer_list<std::pair<std::string_view, Init>> members);

/// An array document from values, in order.
Json array(std::initializer_list<Init> items);

/// Sets `key` of the object `doc` to `value`, replacing an existing member.
/// REQUIRES: doc.IsObject()
void set(Json& doc, std::string_view key, const Init& value);
/// The same for an object inside a document, with that document's allocator.
/// REQUIRES: object.IsObject()
void set(JsonValue& object, std::string_view key, const Init& value, Json::AllocatorType& allocator);

/// Appends `value` to the array `doc`.
/// REQUIRES: doc.IsArray()
void push(Json& doc, const Init& value);
/// The same for an array inside a document, with that document's allocator.
/// REQUIRES: array.IsArray()
void push(JsonValue& array, const Init& value, Json::AllocatorType& allocator);

/// Adds `key: value` to `error`'s details (Error::details, a JSON object text),
/// replacing an existing member with that key.
void add_detail(Error& error, std::string_view key, const Init& value);

/// Everything `error` says besides its message, as one object: the members of
/// Error::details, plus "code", "pointer" (when set) and "offset", "line",
/// "column" (when the error has a position). Members of Error::details win.
/// Response::error(status, code, Error) sends this as "details".
Json error_details(const Error& error);

// ---- reading typed values with errors that name the JSON pointer ------------
//
//   auto count = json::get<int>(body, "/count");            // Result<int>
//   if (!count) return Response::error(400, "bad_request", count.error());
//   auto name = json::get_or<std::string>(body, "/owner/name", "nobody");
//
// Pointers are RFC 6901 ("" is the whole value, "/a/0/b~1c" is member "b/c"
// of the first element of "a"). Failures have code "invalid_field", the
// pointer in Error::pointer, and a message naming it: "/count is required",
// "/count must be an integer, got string", "/count: 3000000000 does not fit
// in int".

/// The value at `pointer` in `root`, or null when there is none (or the
/// pointer is malformed).
const JsonValue* find(const JsonValue& root, std::string_view pointer);

/// `token` escaped for use as one reference token of a JSON pointer ("~" →
/// "~0", "/" → "~1"): pointer += "/" + json::pointer_token(key).
std::string pointer_token(std::string_view token);

/// The value at `pointer`, as T: bool, int, std::int64_t, std::uint64_t,
/// double (any number), std::string_view (refers into `root`), std::string,
/// or const JsonValue* (any value). Absent is an error.
template <typename T>
Result<T> get(const JsonValue& root, std::string_view pointer);

/// As get(), but `fallback` when the value is absent or null.
template <typename T>
Result<T> get_or(const JsonValue& root, std::string_view pointer, T fallback) {
  const JsonValue* v = find(root, pointer);
  if (v == nullptr || v->IsNull()) return fallback;
  return get<T>(root, pointer);
}

}  // namespace json

/// A compiled JSON Schema (draft-04 keywords; unknown keywords are ignored, so
/// newer documents such as MCP tool schemas are accepted and kept verbatim).
class JsonSchema {
 public:
  /// Compiles `schema`. Fails with code "invalid_schema" when `schema` is not an
  /// object or boolean.
  static Result<JsonSchema> compile(const JsonValue& schema);
  /// Parses `schema_text` (json::parse's rules) and compiles it; text that is
  /// not JSON fails with code "invalid_schema" and the parse error's position.
  static Result<JsonSchema> compile(std::string_view schema_text);

  /// Validates `instance`. On failure the error code is "schema_violation", the
  /// message reads "<pointer>: <reason>" and `pointer` is the JSON pointer of the
  /// offending value ("" for the root, rendered as "/" in messages).
  Result<void> validate(const JsonValue& instance) const;

  /// The schema document as given.
  const JsonValue& document() const;

  /// Moves the compiled schema; `other` is left empty.
  JsonSchema(JsonSchema&& other) noexcept;
  /// Moves the compiled schema; `other` is left empty.
  JsonSchema& operator=(JsonSchema&& other) noexcept;
  JsonSchema(const JsonSchema&) = delete;
  JsonSchema& operator=(const JsonSchema&) = delete;
  ~JsonSchema();

 private:
  struct Impl;
  explicit JsonSchema(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
