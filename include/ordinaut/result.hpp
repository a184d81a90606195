// Errors as values: `Error` and `Result<T>`.
//
// Every fallible operation at a boundary (parsing, loading, validation, tool
// calls) returns a Result. An `Error` carries a stable machine-readable `code`
// ("invalid_json", "schema_violation", "abi_mismatch", ...), a message for
// people that names what is wrong, and optionally the JSON pointer or file it
// concerns.
#pragma once

#include <cassert>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// What went wrong: a stable code, a message for people, and where.
struct Error {
  std::string code;     ///< stable identifier, snake_case
  std::string message;  ///< human-readable, names the offending thing
  std::string pointer;  ///< JSON pointer of the offending value, when relevant
  std::string file;     ///< file the error concerns, when relevant
  /// Where in the input text the error is (parse errors): byte offset, and the
  /// 1-based line and column (in bytes) of that offset.
  std::optional<std::size_t> offset;
  std::size_t line = 0;    ///< 1-based line of `offset`; 0 when there is none
  std::size_t column = 0;  ///< 1-based column (bytes) of `offset`; 0 when there is none
  /// Structured details as JSON object text (e.g. {"missing_capability":
  /// "EVENTS_PUB"}), or empty. Response::error(status, code, Error) merges them
  /// into the response's "details" with the pointer and position above.
  std::string details;

  /// "file: message" when a file is set, otherwise the message.
  std::string describe() const { return file.empty() ? message : file + ": " + message; }
};

/// An Error with `code` and `message` only.
inline Error make_error(std::string code, std::string message) {
  Error e;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

/// Either a value of type T or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  /// A success holding `value`.
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  /// A failure holding `error`.
  Result(Error error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  /// True for a success.
  bool ok() const noexcept { return data_.index() == 0; }
  /// ok().
  explicit operator bool() const noexcept { return ok(); }

  /// The value. REQUIRES: ok()
  T& value() & { assert(ok()); return std::get<0>(data_); }
  /// The value. REQUIRES: ok()
  const T& value() const& { assert(ok()); return std::get<0>(data_); }
  /// The value, moved out. REQUIRES: ok()
  T&& value() && { assert(ok()); return std::get<0>(std::move(data_)); }
  /// Member access to the value. REQUIRES: ok()
  T* operator->() { return &value(); }
  /// Member access to the value. REQUIRES: ok()
  const T* operator->() const { return &value(); }
  /// The value. REQUIRES: ok()
  T& operator*() & { return value(); }
  /// The value. REQUIRES: ok()
  const T& operator*() const& { return value(); }
  /// The value, moved out. REQUIRES: ok()
  T&& operator*() && { return std::move(*this).value(); }

  /// The error. REQUIRES: !ok()
  const Error& error() const { assert(!ok()); return std::get<1>(data_); }

 private:
  std::variant<T, Error> data_;
};

/// Success (no value) or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  /// A success.
  Result() = default;
  /// A failure holding `error`.
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  /// True for a success.
  bool ok() const noexcept { return !error_.has_value(); }
  /// ok().
  explicit operator bool() const noexcept { return ok(); }
  /// The error. REQUIRES: !ok()
  const Error& error() const { assert(!ok()); return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
