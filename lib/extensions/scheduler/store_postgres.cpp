// PostgreSQL connection of the scheduler's Store (libpq). Parameterised
// statements only (PQexecParams, values as text), row locks with
// FOR UPDATE SKIP LOCKED and transaction-scoped advisory locks, so that
// several servers can share one database.
#include <libpq-fe.h>

#include <charconv>
#include <string>

#include <fmt/format.h>

#include "store_sql.hpp"

namespace ordinaut::scheduler::sql {
namespace {

// SQLSTATEs: unique_violation, foreign_key_violation.
constexpr std::string_view kUniqueViolation = "23505";
constexpr std::string_view kForeignKeyViolation = "23503";

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r) {}
  ~PgResult() { PQclear(r_); }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  PGresult* get() const { return r_; }

 private:
  PGresult* r_;
};

std::string trimmed(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class PgConnection final : public Connection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() override { PQfinish(conn_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  std::string_view backend() const override { return "postgresql"; }

  Result<Rows> query(std::string_view text, std::span<const Param> params) override {
    std::vector<std::string> storage(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
        storage[i] = std::to_string(*n);
        values[i] = storage[i].c_str();
      } else if (const auto* s = std::get_if<std::string_view>(&params[i])) {
        storage[i] = std::string(*s);
        values[i] = storage[i].c_str();
      }
    }
    const std::string statement(text);
    PgResult result(PQexecParams(conn_, statement.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                                 nullptr, nullptr, 0));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure("statement", result.get());
    Rows rows;
    const int nrows = PQntuples(result.get());
    const int ncols = PQnfields(result.get());
    rows.columns = static_cast<std::size_t>(ncols);
    rows.cells.reserve(static_cast<std::size_t>(nrows) * rows.columns);
    for (int r = 0; r < nrows; ++r) {
      for (int c = 0; c < ncols; ++c) {
        if (PQgetisnull(result.get(), r, c) != 0) {
          rows.cells.emplace_back(std::nullopt);
        } else {
          rows.cells.emplace_back(std::string(PQgetvalue(result.get(), r, c),
                                              static_cast<std::size_t>(PQgetlength(result.get(), r, c))));
        }
      }
    }
    const std::string_view tuples = PQcmdTuples(result.get());
    std::from_chars(tuples.data(), tuples.data() + tuples.size(), rows.affected);
    return rows;
  }

  Result<void> exec_script(std::string_view text) override {
    const std::string script(text);
    PgResult result(PQexec(conn_, script.c_str()));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure("script", result.get());
    return {};
  }

  Result<void> begin() override { return exec_script("BEGIN"); }
  Result<void> commit() override { return exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) PQclear(PQexec(conn_, "ROLLBACK"));
  }

  Result<void> lock_key(std::string_view key) override {
    const Param params[] = {key};
    auto r = query("SELECT pg_advisory_xact_lock(hashtext($1))", params);
    if (!r.ok()) return r.error();
    return {};
  }
  Result<bool> try_lock_key(std::string_view key) override {
    const Param params[] = {key};
    auto r = query("SELECT pg_try_advisory_xact_lock(hashtext($1))", params);
    if (!r.ok()) return r.error();
    return r->size() == 1 && r->at(0, 0).value_or("") == "t";
  }
  std::string_view lock_rows_clause() const override { return " FOR UPDATE SKIP LOCKED"; }

  bool broken() const override { return PQstatus(conn_) != CONNECTION_OK; }
  Result<void> reconnect() override {
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      return make_error("store_unavailable",
                        fmt::format("cannot reconnect to postgresql: {}", trimmed(PQerrorMessage(conn_))));
    }
    return {};
  }

 private:
  Error failure(std::string_view what, const PGresult* result) const {
    std::string cause = trimmed(PQresultErrorMessage(result));
    if (cause.empty()) cause = trimmed(PQerrorMessage(conn_));
    Error e = store_error(what, cause);
    const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    if (state != nullptr && state == kUniqueViolation) {
      e.code = "conflict";
    } else if (state != nullptr && state == kForeignKeyViolation) {
      e.code = "foreign_key";
    } else if (PQstatus(conn_) != CONNECTION_OK) {
      e.code = "store_unavailable";
    }
    return e;
  }

  PGconn* conn_;
};

}  // namespace

Result<std::unique_ptr<Connection>> open_postgres(std::string_view uri) {
  const std::string conninfo(uri);
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (options == nullptr) {
    std::string cause = parse_error != nullptr ? trimmed(parse_error) : "out of memory";
    PQfreemem(parse_error);
    return make_error("invalid_store", fmt::format("store spec is not a valid postgresql URI: {}", cause));
  }
  PQconninfoFree(options);
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return make_error("store_unavailable", "cannot connect to postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string cause = trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    return make_error("store_unavailable", fmt::format("cannot connect to postgresql: {}", cause));
  }
  // Notices (e.g. "relation already exists, skipping") are not errors and
  // must not reach stderr; the processor survives PQreset.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(std::make_unique<PgConnection>(conn));
}

}  // namespace ordinaut::scheduler::sql
