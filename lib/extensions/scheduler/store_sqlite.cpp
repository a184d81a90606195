// SQLite connection of the scheduler's Store: one file, WAL mode (readers do
// not block the writer), a busy timeout so that several connections on the
// same file wait for each other, foreign keys on, prepared statements cached.
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "store_sql.hpp"

namespace ordinaut::scheduler::sql {
namespace {

constexpr int kBusyTimeoutMs = 30000;

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [text, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  std::string_view backend() const override { return "sqlite"; }

  Result<Rows> query(std::string_view text, std::span<const Param> params) override {
    auto prepared = prepare(text);
    if (!prepared.ok()) return prepared.error();
    sqlite3_stmt* stmt = prepared.value();
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      int rc = SQLITE_OK;
      if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, index, *n);
      } else if (const auto* s = std::get_if<std::string_view>(&params[i])) {
        rc = sqlite3_bind_text64(stmt, index, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      } else {
        rc = sqlite3_bind_null(stmt, index);
      }
      if (rc != SQLITE_OK) return failure("bind", rc);
    }
    Rows rows;
    rows.columns = static_cast<std::size_t>(sqlite3_column_count(stmt));
    while (true) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        Error e = failure("statement", rc);
        sqlite3_reset(stmt);
        return e;
      }
      for (std::size_t c = 0; c < rows.columns; ++c) {
        const int col = static_cast<int>(c);
        if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
          rows.cells.emplace_back(std::nullopt);
        } else {
          const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
          rows.cells.emplace_back(std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt, col))));
        }
      }
    }
    rows.affected = sqlite3_changes64(db_);
    sqlite3_reset(stmt);
    return rows;
  }

  Result<void> exec_script(std::string_view text) override {
    const std::string script(text);
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, script.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
      std::string cause = message != nullptr ? message : sqlite3_errstr(rc);
      sqlite3_free(message);
      return store_error("script", cause);
    }
    return {};
  }

  Result<void> begin() override { return exec_script("BEGIN IMMEDIATE"); }
  Result<void> commit() override { return exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Result<void> lock_key(std::string_view) override { return {}; }
  Result<bool> try_lock_key(std::string_view) override { return true; }
  std::string_view lock_rows_clause() const override { return ""; }
  bool broken() const override { return false; }
  Result<void> reconnect() override { return {}; }

 private:
  // Prepared once per distinct SQL text; $N placeholders become ?N.
  Result<sqlite3_stmt*> prepare(std::string_view text) {
    std::string key(text);
    if (auto it = statements_.find(key); it != statements_.end()) return it->second;
    std::string converted = key;
    for (char& c : converted) {
      if (c == '$') c = '?';
    }
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, converted.c_str(), static_cast<int>(converted.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return failure("prepare", rc);
    statements_.emplace(std::move(key), stmt);
    return stmt;
  }

  Error failure(std::string_view what, int rc) const {
    const int extended = sqlite3_extended_errcode(db_);
    Error e = store_error(what, sqlite3_errmsg(db_));
    if (extended == SQLITE_CONSTRAINT_PRIMARYKEY || extended == SQLITE_CONSTRAINT_UNIQUE) {
      e.code = "conflict";
    } else if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) {
      e.code = "foreign_key";
    } else if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      e.code = "store_busy";
    }
    return e;
  }

  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*, std::less<>> statements_;
};

}  // namespace

Result<std::unique_ptr<Connection>> open_sqlite(std::string_view path) {
  if (path.empty()) return make_error("invalid_store", "store spec \"sqlite:\" has no file path after \"sqlite:\"");
  if (path.find('\0') != std::string_view::npos) {
    return make_error("invalid_store", "store spec sqlite path contains a NUL byte");
  }
  if (path == ":memory:" || path.starts_with("file:")) {
    return make_error("invalid_store",
                      fmt::format("store spec sqlite path \"{}\" is not a plain file path (WAL needs a file)", path));
  }
  const std::filesystem::path file{std::string(path)};
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      return make_error("store_unavailable", fmt::format("cannot create the folder of sqlite store \"{}\": {}",
                                                         path, ec.message()));
    }
  }
  sqlite3* db = nullptr;
  const std::string name(path);
  const int rc = sqlite3_open_v2(name.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string cause = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return make_error("store_unavailable", fmt::format("cannot open sqlite store \"{}\": {}", path, cause));
  }
  auto connection = std::make_unique<SqliteConnection>(db);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  auto wal = connection->query("PRAGMA journal_mode=WAL", {});
  if (!wal.ok()) {
    return make_error("store_unavailable", fmt::format("sqlite store \"{}\": {}", path, wal.error().message));
  }
  if (wal->size() != 1 || wal->at(0, 0).value_or("") != "wal") {
    return make_error("store_unavailable", fmt::format("sqlite store \"{}\" refused WAL journal mode", path));
  }
  if (auto pragmas = connection->exec_script("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"); !pragmas.ok()) {
    return make_error("store_unavailable", fmt::format("sqlite store \"{}\": {}", path, pragmas.error().message));
  }
  return std::unique_ptr<Connection>(std::move(connection));
}

}  // namespace ordinaut::scheduler::sql
