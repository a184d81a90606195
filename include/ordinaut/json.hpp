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

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

using Json = rapidjson::Document;
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
/// A byte that is not part of valid UTF-8 becomes \ufffd, so the result is
/// always valid UTF-8.
std::string escape(std::string_view text);

}  // namespace json

/// A compiled JSON Schema (draft-04 keywords; unknown keywords are ignored, so
/// newer documents such as MCP tool schemas are accepted and kept verbatim).
class JsonSchema {
 public:
  /// Compiles `schema`. Fails with code "invalid_schema" when `schema` is not an
  /// object or boolean.
  static Result<JsonSchema> compile(const JsonValue& schema);
  static Result<JsonSchema> compile(std::string_view schema_text);

  /// Validates `instance`. On failure the error code is "schema_violation", the
  /// message reads "<pointer>: <reason>" and `pointer` is the JSON pointer of the
  /// offending value ("" for the root, rendered as "/" in messages).
  Result<void> validate(const JsonValue& instance) const;

  /// The schema document as given.
  const JsonValue& document() const;

  JsonSchema(JsonSchema&&) noexcept;
  JsonSchema& operator=(JsonSchema&&) noexcept;
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
