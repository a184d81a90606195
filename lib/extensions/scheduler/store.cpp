// The scheduler's Store over either backend: opening a spec, versioned
// migrations, and every operation as SQL through sql::Connection. The SQL is
// the subset SQLite and PostgreSQL share (partial indexes, ON CONFLICT ...
// DO NOTHING, RETURNING, window functions); booleans are 0/1 integers.
#include "store.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "store_sql.hpp"

namespace ordinaut::scheduler {

namespace sql {
Error store_error(std::string_view what, std::string_view cause) {
  return make_error("store_error", fmt::format("store {} failed: {}", what, cause));
}
}  // namespace sql

namespace {

using sql::Param;
using sql::Rows;

constexpr std::size_t kMaxPage = 1000;

// --- migrations -------------------------------------------------------------
// Append only: a released migration never changes. Each runs once, in its own
// transaction together with its schema_migrations row.
struct Migration {
  int version;
  std::string_view name;
  std::string_view script;
};

constexpr std::array kMigrations = {
    Migration{1, "tasks and runs", R"sql(
CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT NOT NULL,
  schedule_kind TEXT NOT NULL,
  schedule_expr TEXT NOT NULL,
  timezone TEXT NOT NULL,
  payload TEXT NOT NULL,
  priority INTEGER NOT NULL,
  max_retries INTEGER NOT NULL,
  backoff_strategy TEXT NOT NULL,
  dedupe_key TEXT NOT NULL,
  concurrency_key TEXT NOT NULL,
  catch_up TEXT NOT NULL,
  dedupe_window_seconds BIGINT NOT NULL,
  enabled INTEGER NOT NULL,
  next_due_ms BIGINT,
  skip_count BIGINT NOT NULL,
  snoozed_until_ms BIGINT,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  revision BIGINT NOT NULL
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  "trigger" TEXT NOT NULL,
  scheduled_for_ms BIGINT NOT NULL,
  started_at_ms BIGINT,
  finished_at_ms BIGINT,
  lease_expires_ms BIGINT,
  attempt INTEGER NOT NULL,
  steps TEXT NOT NULL,
  error TEXT NOT NULL,
  event TEXT NOT NULL,
  lease_owner TEXT NOT NULL,
  dedupe_key TEXT NOT NULL,
  concurrency_key TEXT NOT NULL,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  params TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX runs_occurrence ON runs (task_id, scheduled_for_ms, "trigger")
  WHERE "trigger" IN ('schedule', 'catch_up');
)sql"},
    Migration{2, "indexes for claims, listing and retention", R"sql(
CREATE INDEX tasks_due ON tasks (next_due_ms, id) WHERE enabled = 1 AND next_due_ms IS NOT NULL;
CREATE INDEX runs_by_task ON runs (task_id, scheduled_for_ms, id);
CREATE INDEX runs_by_time ON runs (scheduled_for_ms, id);
CREATE INDEX runs_claimable ON runs (status, scheduled_for_ms);
CREATE INDEX runs_concurrency ON runs (concurrency_key) WHERE concurrency_key <> '' AND status = 'running';
CREATE INDEX runs_dedupe ON runs (dedupe_key, scheduled_for_ms) WHERE dedupe_key <> '';
)sql"},
};

// --- columns and rows -------------------------------------------------------

constexpr std::string_view kTaskColumns =
    "id, title, description, schedule_kind, schedule_expr, timezone, payload, priority, max_retries, "
    "backoff_strategy, dedupe_key, concurrency_key, catch_up, dedupe_window_seconds, enabled, next_due_ms, "
    "skip_count, snoozed_until_ms, created_at_ms, updated_at_ms, revision";
constexpr std::string_view kRunColumns =
    "id, task_id, status, \"trigger\", scheduled_for_ms, started_at_ms, finished_at_ms, lease_expires_ms, attempt, "
    "steps, error, event, lease_owner, dedupe_key, concurrency_key, cancel_requested, params";

Param opt(const std::optional<std::int64_t>& v) { return v ? Param{*v} : Param{nullptr}; }

// Reads typed cells; a cell the schema makes impossible (NULL in NOT NULL,
// non-number in a number column) reads as 0 / "" rather than crashing.
class RowReader {
 public:
  RowReader(const Rows& rows, std::size_t row) : rows_(rows), row_(row) {}
  std::string text() { return rows_.at(row_, col_++).value_or(std::string()); }
  std::optional<std::int64_t> opt_int() {
    const auto& cell = rows_.at(row_, col_++);
    if (!cell) return std::nullopt;
    std::int64_t value = 0;
    if (*cell == "t" || *cell == "true") return 1;
    std::from_chars(cell->data(), cell->data() + cell->size(), value);
    return value;
  }
  std::int64_t integer() { return opt_int().value_or(0); }
  int small() {
    const std::int64_t v = integer();
    return static_cast<int>(std::clamp<std::int64_t>(v, std::numeric_limits<int>::min(),
                                                     std::numeric_limits<int>::max()));
  }

 private:
  const Rows& rows_;
  std::size_t row_;
  std::size_t col_ = 0;
};

TaskRecord read_task(const Rows& rows, std::size_t row) {
  RowReader r(rows, row);
  TaskRecord t;
  t.id = r.text();
  t.title = r.text();
  t.description = r.text();
  t.schedule_kind = r.text();
  t.schedule_expr = r.text();
  t.timezone = r.text();
  t.payload = r.text();
  t.priority = r.small();
  t.max_retries = r.small();
  t.backoff_strategy = r.text();
  t.dedupe_key = r.text();
  t.concurrency_key = r.text();
  t.catch_up = r.text();
  t.dedupe_window_seconds = r.integer();
  t.enabled = r.integer() != 0;
  t.next_due_ms = r.opt_int();
  t.skip_count = r.integer();
  t.snoozed_until_ms = r.opt_int();
  t.created_at_ms = r.integer();
  t.updated_at_ms = r.integer();
  t.revision = r.integer();
  return t;
}

RunRecord read_run(const Rows& rows, std::size_t row) {
  RowReader r(rows, row);
  RunRecord run;
  run.id = r.text();
  run.task_id = r.text();
  run.status = r.text();
  run.trigger = r.text();
  run.scheduled_for_ms = r.integer();
  run.started_at_ms = r.opt_int();
  run.finished_at_ms = r.opt_int();
  run.lease_expires_ms = r.opt_int();
  run.attempt = r.small();
  run.steps = r.text();
  run.error = r.text();
  run.event = r.text();
  run.lease_owner = r.text();
  run.dedupe_key = r.text();
  run.concurrency_key = r.text();
  run.cancel_requested = r.integer() != 0;
  run.params = r.text();
  return run;
}

// The 17 parameters of a run row, in kRunColumns order.
std::array<Param, 17> run_params(const RunRecord& run) {
  return {run.id,
          run.task_id,
          run.status,
          run.trigger,
          run.scheduled_for_ms,
          opt(run.started_at_ms),
          opt(run.finished_at_ms),
          opt(run.lease_expires_ms),
          std::int64_t{run.attempt},
          run.steps,
          run.error,
          run.event,
          run.lease_owner,
          run.dedupe_key,
          run.concurrency_key,
          std::int64_t{run.cancel_requested ? 1 : 0},
          run.params};
}

// --- cursors ----------------------------------------------------------------
// Opaque to callers: hex of "<key>" (tasks) or "<scheduled_for_ms>:<id>" (runs).

std::string encode_cursor(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char c : text) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xF]);
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

Error bad_cursor() {
  Error e = make_error("invalid_argument", "cursor is not one this store returned (use next_cursor as given)");
  e.pointer = "/cursor";
  return e;
}

Result<std::string> decode_cursor(std::string_view cursor) {
  if (cursor.size() % 2 != 0 || cursor.size() > 65536) return bad_cursor();
  std::string out;
  out.reserve(cursor.size() / 2);
  for (std::size_t i = 0; i < cursor.size(); i += 2) {
    const int hi = hex_digit(cursor[i]);
    const int lo = hex_digit(cursor[i + 1]);
    if (hi < 0 || lo < 0) return bad_cursor();
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

Result<void> check_limit(std::size_t limit) {
  if (limit == 0 || limit > kMaxPage) {
    Error e = make_error("invalid_argument", fmt::format("limit {} is out of range 1-{}", limit, kMaxPage));
    e.pointer = "/limit";
    return e;
  }
  return {};
}

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t to_i64(std::size_t n) {
  return static_cast<std::int64_t>(std::min<std::size_t>(n, static_cast<std::size_t>(
                                                                 std::numeric_limits<std::int64_t>::max())));
}

std::string concurrency_lock(std::string_view key) { return fmt::format("ordinaut.scheduler.concurrency:{}", key); }

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sql::Connection& db) : db_(db) {}
  ~Transaction() {
    if (open_) db_.rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Result<void> begin() {
    auto r = db_.begin();
    open_ = r.ok();
    return r;
  }
  Result<void> commit() {
    open_ = false;
    auto r = db_.commit();
    if (!r.ok()) db_.rollback();
    return r;
  }

 private:
  sql::Connection& db_;
  bool open_ = false;
};

class SqlStore final : public Store {
 public:
  explicit SqlStore(std::unique_ptr<sql::Connection> db) : db_(std::move(db)) {}

  Result<void> migrate() {
    std::lock_guard lock(mu_);
    Transaction tx(*db_);
    if (auto r = tx.begin(); !r.ok()) return r;
    // Two servers starting together: the second waits, then sees the work done.
    if (auto r = db_->lock_key("ordinaut.scheduler.migrations"); !r.ok()) return r;
    if (auto r = db_->exec_script("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                                  "name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)");
        !r.ok()) {
      return r;
    }
    auto current = run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {});
    if (!current.ok()) return current.error();
    const std::int64_t have = RowReader(*current, 0).integer();
    const int known = kMigrations.back().version;
    if (have > known) {
      return make_error("store_schema_too_new",
                        fmt::format("store schema version {} is newer than this server's {}; upgrade the server",
                                    have, known));
    }
    for (const Migration& m : kMigrations) {
      if (m.version <= have) continue;
      if (auto r = db_->exec_script(m.script); !r.ok()) {
        return make_error("store_error",
                          fmt::format("store migration {} ({}) failed: {}", m.version, m.name, r.error().message));
      }
      auto row = run("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                     {std::int64_t{m.version}, m.name, wall_clock_ms()});
      if (!row.ok()) return row.error();
    }
    if (auto r = tx.commit(); !r.ok()) return r;
    version_ = known;
    return {};
  }

  std::string_view backend() const override { return db_->backend(); }
  int schema_version() const override { return version_; }

  Result<void> insert_task(const TaskRecord& t) override {
    return locked([&]() -> Result<void> {
      auto r = run(fmt::format("INSERT INTO tasks ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                               "$13, $14, $15, $16, $17, $18, $19, $20, $21)",
                               kTaskColumns),
                   {t.id, t.title, t.description, t.schedule_kind, t.schedule_expr, t.timezone, t.payload,
                    std::int64_t{t.priority}, std::int64_t{t.max_retries}, t.backoff_strategy, t.dedupe_key,
                    t.concurrency_key, t.catch_up, t.dedupe_window_seconds, std::int64_t{t.enabled ? 1 : 0},
                    opt(t.next_due_ms), t.skip_count, opt(t.snoozed_until_ms), t.created_at_ms, t.updated_at_ms,
                    t.revision});
      if (!r.ok()) {
        if (r.error().code == "conflict") {
          return make_error("conflict", fmt::format("task \"{}\" already exists", t.id));
        }
        return r.error();
      }
      return {};
    });
  }

  Result<std::optional<TaskRecord>> get_task(std::string_view id) override {
    return get_by_id("tasks", kTaskColumns, read_task, id);
  }

  Result<TaskPage> list_tasks(const TaskQuery& q) override {
    if (auto r = check_limit(q.limit); !r.ok()) return r.error();
    auto after = decode_cursor(q.cursor);
    if (!after.ok()) return after.error();
    const std::int64_t enabled = q.enabled ? (*q.enabled ? 1 : 0) : -1;
    return locked([&]() -> Result<TaskPage> {
      auto r = run(fmt::format("SELECT {} FROM tasks WHERE (CAST($1 AS TEXT) = '' OR id > $1) "
                               "AND (CAST($2 AS BIGINT) < 0 OR enabled = $2) ORDER BY id LIMIT $3",
                               kTaskColumns),
                   {*after, enabled, to_i64(q.limit + 1)});
      if (!r.ok()) return r.error();
      TaskPage page;
      for (std::size_t i = 0; i < std::min(r->size(), q.limit); ++i) page.tasks.push_back(read_task(*r, i));
      if (r->size() > q.limit) page.next_cursor = encode_cursor(page.tasks.back().id);
      return page;
    });
  }

  Result<bool> update_task(const TaskRecord& t, std::int64_t expected_revision) override {
    return locked([&]() -> Result<bool> {
      auto r = run("UPDATE tasks SET title = $2, description = $3, schedule_kind = $4, schedule_expr = $5, "
                   "timezone = $6, payload = $7, priority = $8, max_retries = $9, backoff_strategy = $10, "
                   "dedupe_key = $11, concurrency_key = $12, catch_up = $13, dedupe_window_seconds = $14, "
                   "enabled = $15, next_due_ms = $16, skip_count = $17, snoozed_until_ms = $18, "
                   "updated_at_ms = $19, revision = revision + 1 WHERE id = $1 AND revision = $20",
                   {t.id, t.title, t.description, t.schedule_kind, t.schedule_expr, t.timezone, t.payload,
                    std::int64_t{t.priority}, std::int64_t{t.max_retries}, t.backoff_strategy, t.dedupe_key,
                    t.concurrency_key, t.catch_up, t.dedupe_window_seconds, std::int64_t{t.enabled ? 1 : 0},
                    opt(t.next_due_ms), t.skip_count, opt(t.snoozed_until_ms), t.updated_at_ms,
                    expected_revision});
      if (!r.ok()) return r.error();
      return r->affected > 0;
    });
  }

  Result<bool> delete_task(std::string_view id) override {
    return locked([&]() -> Result<bool> {
      auto r = run("DELETE FROM tasks WHERE id = $1", {id});  // runs: ON DELETE CASCADE
      if (!r.ok()) return r.error();
      return r->affected > 0;
    });
  }

  Result<RunInsert> insert_run(const RunRecord& run_record, std::int64_t dedupe_window_ms) override {
    return locked([&]() -> Result<RunInsert> {
      Transaction tx(*db_);
      if (auto r = tx.begin(); !r.ok()) return r.error();
      if (!run_record.dedupe_key.empty() && dedupe_window_ms > 0) {
        if (auto r = db_->lock_key(fmt::format("ordinaut.scheduler.dedupe:{}", run_record.dedupe_key)); !r.ok()) {
          return r.error();
        }
        const std::int64_t max = std::numeric_limits<std::int64_t>::max();
        const std::int64_t window = std::min(dedupe_window_ms, max / 4);
        const std::int64_t at = std::clamp(run_record.scheduled_for_ms, -max / 4, max / 4);
        auto found = run(fmt::format("SELECT {} FROM runs WHERE dedupe_key = $1 AND status NOT IN ('cancelled', "
                                     "'skipped') AND scheduled_for_ms >= $2 AND scheduled_for_ms <= $3 "
                                     "ORDER BY scheduled_for_ms DESC, id DESC LIMIT 1",
                                     kRunColumns),
                         {run_record.dedupe_key, at - window, at + window});
        if (!found.ok()) return found.error();
        if (found->size() > 0) {
          RunInsert existing{read_run(*found, 0), false};
          if (auto r = tx.commit(); !r.ok()) return r.error();
          return existing;
        }
      }
      if (auto r = insert_run_row(run_record, false); !r.ok()) return r.error();
      if (auto r = tx.commit(); !r.ok()) return r.error();
      return RunInsert{run_record, true};
    });
  }

  Result<std::optional<RunRecord>> get_run(std::string_view id) override {
    return get_by_id("runs", kRunColumns, read_run, id);
  }

  Result<RunPage> list_runs(const RunQuery& q) override {
    if (auto r = check_limit(q.limit); !r.ok()) return r.error();
    auto decoded = decode_cursor(q.cursor);
    if (!decoded.ok()) return decoded.error();
    std::int64_t before_ms = 0;
    std::string before_id;
    const bool paged = !decoded->empty();
    if (paged) {
      const std::string& c = *decoded;
      const auto colon = c.find(':');
      if (colon == std::string::npos) return bad_cursor();
      const auto [end, ec] = std::from_chars(c.data(), c.data() + colon, before_ms);
      if (ec != std::errc() || end != c.data() + colon) return bad_cursor();
      before_id = c.substr(colon + 1);
    }
    return locked([&]() -> Result<RunPage> {
      auto r = run(fmt::format("SELECT {} FROM runs WHERE (CAST($1 AS TEXT) = '' OR task_id = $1) "
                               "AND (CAST($2 AS TEXT) = '' OR status = $2) AND (CAST($3 AS BIGINT) = 0 OR "
                               "scheduled_for_ms < $4 OR (scheduled_for_ms = $4 AND id < $5)) "
                               "ORDER BY scheduled_for_ms DESC, id DESC LIMIT $6",
                               kRunColumns),
                   {q.task_id, q.status, std::int64_t{paged ? 1 : 0}, before_ms, before_id, to_i64(q.limit + 1)});
      if (!r.ok()) return r.error();
      RunPage page;
      for (std::size_t i = 0; i < std::min(r->size(), q.limit); ++i) page.runs.push_back(read_run(*r, i));
      if (r->size() > q.limit) {
        const RunRecord& last = page.runs.back();
        page.next_cursor = encode_cursor(fmt::format("{}:{}", last.scheduled_for_ms, last.id));
      }
      return page;
    });
  }

  Result<std::vector<RunRecord>> claim_due(std::int64_t now_ms, std::string_view owner, std::int64_t lease_ms,
                                           std::size_t limit, const Planner& planner) override {
    return locked([&]() -> Result<std::vector<RunRecord>> {
      std::vector<RunRecord> claimed;
      // Walk due tasks in (next_due_ms, id) order so that one call visits each
      // at most once per position, however the planner moves it.
      std::int64_t after_due = std::numeric_limits<std::int64_t>::min();
      std::string after_id;
      for (std::size_t n = 0; n < limit; ++n) {
        auto one = claim_one_task(now_ms, owner, lease_ms, planner, after_due, after_id, claimed);
        if (!one.ok()) {
          if (claimed.empty()) return one.error();
          break;  // keep what was committed; the error recurs on the next call
        }
        if (!one.value()) break;
      }
      return claimed;
    });
  }

  Result<std::vector<RunRecord>> claim_runs(std::int64_t now_ms, std::string_view owner, std::int64_t lease_ms,
                                            std::size_t limit) override {
    if (limit == 0) return std::vector<RunRecord>();
    return locked([&]() -> Result<std::vector<RunRecord>> {
      Transaction tx(*db_);
      if (auto r = tx.begin(); !r.ok()) return r.error();
      // Look a little past `limit`: some candidates may wait for their concurrency key.
      const std::size_t window = std::min<std::size_t>(limit, kMaxPage) * 4 + 16;
      auto candidates = run(fmt::format("SELECT {} FROM runs WHERE (status = 'queued' AND cancel_requested = 0) "
                                        "OR (status = 'running' AND lease_expires_ms IS NOT NULL AND "
                                        "lease_expires_ms <= $1) ORDER BY scheduled_for_ms, id LIMIT $2{}",
                                        kRunColumns, db_->lock_rows_clause()),
                            {now_ms, to_i64(window)});
      if (!candidates.ok()) return candidates.error();
      std::vector<RunRecord> claimed;
      std::set<std::string, std::less<>> keys_taken;
      for (std::size_t i = 0; i < candidates->size() && claimed.size() < limit; ++i) {
        RunRecord r = read_run(*candidates, i);
        if (!r.concurrency_key.empty()) {
          if (keys_taken.contains(r.concurrency_key)) continue;
          auto held = key_held(r.concurrency_key, now_ms, r.id);
          if (!held.ok()) return held.error();
          if (held.value()) continue;
          keys_taken.insert(r.concurrency_key);
        }
        const bool takeover = r.status == "running";
        if (takeover) ++r.attempt;
        r.status = "running";
        r.lease_owner = std::string(owner);
        r.lease_expires_ms = now_ms + lease_ms;
        r.started_at_ms = now_ms;
        auto u = run("UPDATE runs SET status = 'running', lease_owner = $2, lease_expires_ms = $3, "
                     "started_at_ms = $4, attempt = $5 WHERE id = $1",
                     {r.id, owner, *r.lease_expires_ms, now_ms, std::int64_t{r.attempt}});
        if (!u.ok()) return u.error();
        claimed.push_back(std::move(r));
      }
      if (auto r = tx.commit(); !r.ok()) return r.error();
      return claimed;
    });
  }

  Result<std::optional<std::int64_t>> next_wake_ms() override {
    return locked([&]() -> Result<std::optional<std::int64_t>> {
      // Each MIN is answered from an index: tasks_due's partial predicate is
      // repeated exactly; runs_claimable leads with status.
      auto r = run("SELECT MIN(wake) FROM (SELECT MIN(next_due_ms) AS wake FROM tasks WHERE enabled = 1 AND "
                   "next_due_ms IS NOT NULL UNION ALL SELECT MIN(lease_expires_ms) AS wake FROM runs WHERE "
                   "status = 'running' AND lease_expires_ms IS NOT NULL) AS wakes",
                   {});
      if (!r.ok()) return r.error();
      if (r->size() == 0) return std::optional<std::int64_t>();
      return RowReader(*r, 0).opt_int();
    });
  }

  Result<bool> renew_lease(std::string_view run_id, std::string_view owner, std::int64_t until_ms) override {
    return locked([&]() -> Result<bool> {
      auto r = run("UPDATE runs SET lease_expires_ms = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                   {run_id, owner, until_ms});
      if (!r.ok()) return r.error();
      return r->affected > 0;
    });
  }

  Result<bool> update_run(const RunRecord& r, std::string_view owner) override {
    return locked([&]() -> Result<bool> {
      auto u = run("UPDATE runs SET status = $4, started_at_ms = $5, finished_at_ms = $6, lease_expires_ms = $7, "
                   "steps = $8, error = $9 WHERE id = $1 AND lease_owner = $2 AND attempt = $3 AND status = 'running'",
                   {r.id, owner, std::int64_t{r.attempt}, r.status, opt(r.started_at_ms), opt(r.finished_at_ms),
                    opt(r.lease_expires_ms), r.steps, r.error});
      if (!u.ok()) return u.error();
      return u->affected > 0;
    });
  }

  Result<bool> request_cancel(std::string_view run_id) override {
    return locked([&]() -> Result<bool> {
      auto queued = run("UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished_at_ms = $2, "
                        "lease_expires_ms = NULL WHERE id = $1 AND status = 'queued'",
                        {run_id, wall_clock_ms()});
      if (!queued.ok()) return queued.error();
      if (queued->affected > 0) return true;
      auto running = run("UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'", {run_id});
      if (!running.ok()) return running.error();
      return running->affected > 0;
    });
  }

  Result<bool> cancel_requested(std::string_view run_id) override {
    return locked([&]() -> Result<bool> {
      auto r = run("SELECT cancel_requested FROM runs WHERE id = $1", {run_id});
      if (!r.ok()) return r.error();
      return r->size() > 0 && RowReader(*r, 0).integer() != 0;
    });
  }

  Result<std::size_t> prune_runs(std::int64_t older_than_ms, std::size_t keep_per_task) override {
    return locked([&]() -> Result<std::size_t> {
      auto r = run("DELETE FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled', 'skipped') AND ("
                   "COALESCE(finished_at_ms, scheduled_for_ms) < $1 OR (CAST($2 AS BIGINT) > 0 AND id IN ("
                   "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY task_id ORDER BY scheduled_for_ms "
                   "DESC, id DESC) AS position FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled', "
                   "'skipped')) AS ranked WHERE position > $2)))",
                   {older_than_ms, to_i64(keep_per_task)});
      if (!r.ok()) return r.error();
      return static_cast<std::size_t>(std::max<std::int64_t>(r->affected, 0));
    });
  }

 private:
  Result<Rows> run(std::string_view statement, std::initializer_list<Param> params) {
    return db_->query(statement, std::span<const Param>(params.begin(), params.size()));
  }

  // Under the mutex; a broken connection (PostgreSQL restarted, network) is
  // reset and the whole operation, which is one transaction or statement,
  // tried once more.
  template <typename F>
  auto locked(F&& operation) -> decltype(operation()) {
    std::lock_guard lock(mu_);
    if (db_->broken()) {
      if (auto r = db_->reconnect(); !r.ok()) return r.error();
    }
    auto result = operation();
    if (!result.ok() && db_->broken()) {
      if (auto r = db_->reconnect(); !r.ok()) return result;
      result = operation();
    }
    return result;
  }

  // One row by primary key; `table` and `columns` are constants of this file.
  template <typename Record>
  Result<std::optional<Record>> get_by_id(std::string_view table, std::string_view columns,
                                          Record (*read)(const Rows&, std::size_t), std::string_view id) {
    return locked([&]() -> Result<std::optional<Record>> {
      auto r = run(fmt::format("SELECT {} FROM {} WHERE id = $1", columns, table), {id});
      if (!r.ok()) return r.error();
      if (r->size() == 0) return std::optional<Record>();
      return std::optional<Record>(read(*r, 0));
    });
  }

  // Inserts one run row. `occurrence`: a planned occurrence, silently not
  // inserted when it exists already; returns whether a row was inserted.
  Result<bool> insert_run_row(const RunRecord& r, bool occurrence) {
    const auto params = run_params(r);
    const std::string statement =
        fmt::format("INSERT INTO runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
                    "$16, $17){}",
                    kRunColumns,
                    occurrence ? " ON CONFLICT (task_id, scheduled_for_ms, \"trigger\") WHERE \"trigger\" IN "
                                 "('schedule', 'catch_up') DO NOTHING RETURNING id"
                               : "");
    auto result = db_->query(statement, params);
    if (!result.ok()) {
      if (result.error().code == "conflict") {
        return make_error("conflict", fmt::format("run \"{}\" already exists (or its occurrence does)", r.id));
      }
      if (result.error().code == "foreign_key") {
        return make_error("not_found", fmt::format("run \"{}\" names task \"{}\", which does not exist", r.id,
                                                   r.task_id));
      }
      return result.error();
    }
    return occurrence ? result->size() > 0 : true;
  }

  // Whether another run holding `key` runs with a live lease. Takes the key's
  // lock first (PostgreSQL), so that a server claiming the same key right now
  // is either waited out or seen; a lock held elsewhere counts as held.
  Result<bool> key_held(std::string_view key, std::int64_t now_ms, std::string_view except_id) {
    auto got = db_->try_lock_key(concurrency_lock(key));
    if (!got.ok()) return got.error();
    if (!got.value()) return true;
    auto r = run("SELECT id FROM runs WHERE concurrency_key = $1 AND status = 'running' AND lease_expires_ms > $2 "
                 "AND id <> $3 LIMIT 1",
                 {key, now_ms, except_id});
    if (!r.ok()) return r.error();
    return r->size() > 0;
  }

  // One due task in one transaction. false: no due task is left.
  Result<bool> claim_one_task(std::int64_t now_ms, std::string_view owner, std::int64_t lease_ms,
                              const Planner& planner, std::int64_t& after_due, std::string& after_id,
                              std::vector<RunRecord>& claimed) {
    Transaction tx(*db_);
    if (auto r = tx.begin(); !r.ok()) return r.error();
    auto due = run(fmt::format("SELECT {} FROM tasks WHERE enabled = 1 AND next_due_ms IS NOT NULL AND "
                               "next_due_ms <= $1 AND (next_due_ms > $2 OR (next_due_ms = $2 AND id > $3)) "
                               "ORDER BY next_due_ms, id LIMIT 1{}",
                               kTaskColumns, db_->lock_rows_clause()),
                   {now_ms, after_due, after_id});
    if (!due.ok()) return due.error();
    if (due->size() == 0) return false;
    TaskRecord task = read_task(*due, 0);
    after_due = task.next_due_ms.value_or(0);
    after_id = task.id;
    std::vector<RunRecord> runs = planner ? planner(task, now_ms) : std::vector<RunRecord>();
    auto u = run("UPDATE tasks SET next_due_ms = $2, skip_count = $3, snoozed_until_ms = $4, enabled = $5, "
                 "updated_at_ms = $6, revision = revision + 1 WHERE id = $1",
                 {after_id, opt(task.next_due_ms), task.skip_count, opt(task.snoozed_until_ms),
                  std::int64_t{task.enabled ? 1 : 0}, now_ms});
    if (!u.ok()) return u.error();
    std::vector<RunRecord> started;
    std::set<std::string, std::less<>> keys_taken;
    for (RunRecord& r : runs) {
      r.task_id = after_id;
      if (r.status == "running") {
        bool wait = false;
        if (!r.concurrency_key.empty()) {
          wait = keys_taken.contains(r.concurrency_key);
          if (!wait) {
            auto held = key_held(r.concurrency_key, now_ms, r.id);
            if (!held.ok()) return held.error();
            wait = held.value();
          }
        }
        if (wait) {
          r.status = "queued";
          r.lease_owner.clear();
          r.lease_expires_ms.reset();
          r.started_at_ms.reset();
        } else {
          if (!r.concurrency_key.empty()) keys_taken.insert(r.concurrency_key);
          r.lease_owner = std::string(owner);
          r.lease_expires_ms = now_ms + lease_ms;
          if (!r.started_at_ms) r.started_at_ms = now_ms;
        }
      } else if (r.status == "skipped" && !r.finished_at_ms) {
        r.finished_at_ms = now_ms;
      }
      auto inserted = insert_run_row(r, true);
      if (!inserted.ok()) return inserted.error();
      if (inserted.value() && r.status == "running") started.push_back(r);
    }
    if (auto r = tx.commit(); !r.ok()) return r.error();
    for (RunRecord& r : started) claimed.push_back(std::move(r));
    return true;
  }

  std::mutex mu_;
  std::unique_ptr<sql::Connection> db_;
  int version_ = 0;
};

}  // namespace

Result<std::unique_ptr<Store>> Store::open(std::string_view spec) {
  Result<std::unique_ptr<sql::Connection>> connection = make_error("invalid_store", "");
  if (spec.starts_with("sqlite:")) {
    connection = sql::open_sqlite(spec.substr(7));
  } else if (spec.starts_with("postgresql://") || spec.starts_with("postgres://")) {
    connection = sql::open_postgres(spec);
  } else if (spec.empty()) {
    return make_error("invalid_store", "store spec is empty; expected sqlite:PATH or postgresql://...");
  } else {
    // Name only the scheme: the rest may hold a password.
    const std::string_view scheme = spec.substr(0, std::min<std::size_t>(spec.find(':'), 32));
    return make_error("invalid_store", fmt::format("store spec scheme \"{}\" is not sqlite:, postgresql:// or "
                                                   "postgres://",
                                                   scheme));
  }
  if (!connection.ok()) return connection.error();
  auto store = std::make_unique<SqlStore>(std::move(connection.value()));
  if (auto r = store->migrate(); !r.ok()) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace ordinaut::scheduler
