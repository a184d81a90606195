// The connection layer under the scheduler's Store (private to store*.cpp).
//
// store.cpp holds all the SQL logic once; a backend only runs statements.
// Statements are written with PostgreSQL placeholders ($1, $2, ...), which the
// SQLite backend rewrites to ?1, ?2 (same numbering). Values always travel as
// bound parameters, never inside the SQL text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <ordinaut/result.hpp>

namespace ordinaut::scheduler::sql {

/// A bound value: NULL, an integer, or text (booleans are 0/1 integers).
using Param = std::variant<std::nullptr_t, std::int64_t, std::string_view>;

/// The rows a statement returned, as text cells (NULL: nullopt), and how many
/// rows it changed.
struct Rows {
  std::size_t columns = 0;
  std::vector<std::optional<std::string>> cells;
  std::int64_t affected = 0;

  std::size_t size() const { return columns == 0 ? 0 : cells.size() / columns; }
  const std::optional<std::string>& at(std::size_t row, std::size_t column) const {
    return cells[row * columns + column];
  }
};

/// One database connection. Not thread-safe: the store serialises calls.
/// Error codes: "conflict" (unique violation), "foreign_key" (foreign key
/// violation), "store_error" (anything else), "store_unavailable".
class Connection {
 public:
  virtual ~Connection() = default;
  virtual std::string_view backend() const = 0;
  /// Runs one statement with parameters; rows for SELECT / RETURNING.
  virtual Result<Rows> query(std::string_view sql, std::span<const Param> params) = 0;
  /// Runs several statements without parameters (migrations).
  virtual Result<void> exec_script(std::string_view sql) = 0;
  /// Starts a transaction that will write: SQLite takes the write lock at once
  /// (BEGIN IMMEDIATE) so that concurrent claimers queue instead of failing.
  virtual Result<void> begin() = 0;
  virtual Result<void> commit() = 0;
  virtual void rollback() noexcept = 0;
  /// Inside a transaction, waits for / tries an exclusive lock on `key` held
  /// until the transaction ends (PostgreSQL advisory locks). SQLite's write
  /// transaction already excludes every other writer: always granted.
  virtual Result<void> lock_key(std::string_view key) = 0;
  virtual Result<bool> try_lock_key(std::string_view key) = 0;
  /// Appended to a SELECT of rows to lock: " FOR UPDATE SKIP LOCKED" or "".
  virtual std::string_view lock_rows_clause() const = 0;
  /// true when the connection is broken and reconnect() may help.
  virtual bool broken() const = 0;
  virtual Result<void> reconnect() = 0;
};

/// The backends (store_sqlite.cpp, store_postgres.cpp). `target` is the spec
/// without "sqlite:" for SQLite, the whole URI for PostgreSQL.
Result<std::unique_ptr<Connection>> open_sqlite(std::string_view path);
Result<std::unique_ptr<Connection>> open_postgres(std::string_view uri);

/// An Error with code "store_error" naming the operation and the cause.
Error store_error(std::string_view what, std::string_view cause);

}  // namespace ordinaut::scheduler::sql
