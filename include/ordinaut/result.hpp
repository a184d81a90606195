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

struct Error {
  std::string code;     ///< stable identifier, snake_case
  std::string message;  ///< human-readable, names the offending thing
  std::string pointer;  ///< JSON pointer of the offending value, when relevant
  std::string file;     ///< file the error concerns, when relevant
  /// Where in the input text the error is (parse errors): byte offset, and the
  /// 1-based line and column (in bytes) of that offset.
  std::optional<std::size_t> offset;
  std::size_t line = 0;
  std::size_t column = 0;
  /// Structured details as JSON object text (e.g. {"missing_capability":
  /// "EVENTS_PUB"}), or empty. Response::error(status, code, Error) merges them
  /// into the response's "details" with the pointer and position above.
  std::string details;

  /// "file: message" when a file is set, otherwise the message.
  std::string describe() const { return file.empty() ? message : file + ": " + message; }
};

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
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  // REQUIRES: ok()
  T& value() & { assert(ok()); return std::get<0>(data_); }
  const T& value() const& { assert(ok()); return std::get<0>(data_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  // REQUIRES: !ok()
  const Error& error() const { assert(!ok()); return std::get<1>(data_); }

 private:
  std::variant<T, Error> data_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  // REQUIRES: !ok()
  const Error& error() const { assert(!ok()); return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
