// The scheduler's Store: every case runs against SQLite (a real file) and
// against a real PostgreSQL 15 started by this test (pg_server.hpp). Times are
// explicit now_ms values: leases expire because the test says what time it
// is, never because it slept.
#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "pg_server.hpp"
#include "store.hpp"
#include "support.hpp"

using ordinaut::scheduler::RunQuery;
using ordinaut::scheduler::RunRecord;
using ordinaut::scheduler::Store;
using ordinaut::scheduler::TaskQuery;
using ordinaut::scheduler::TaskRecord;

namespace {

// One server for the whole program (a fresh database per test case); stopped
// by its destructor at exit. A start failure throws into the test case.
test_support::PgServer& pg() {
  static test_support::PgServer server;
  return server;
}

// A backend under test: its store spec, and raw SQL for checks that look
// under the Store (schema_migrations, indexes, planting old versions).
struct SqliteBackend {
  test_support::TempDir dir;
  std::string spec() const { return "sqlite:" + file(); }
  std::string file() const { return (dir.path() / "data" / "scheduler.db").string(); }
  std::vector<std::vector<std::string>> query(const std::string& sql) const {
    sqlite3* db = nullptr;
    if (sqlite3_open(file().c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + file());
    std::vector<std::vector<std::string>> rows;
    sqlite3_stmt* stmt = nullptr;
    const char* rest = sql.c_str();
    while (*rest != '\0') {
      if (sqlite3_prepare_v2(db, rest, -1, &stmt, &rest) != SQLITE_OK) {
        std::string message = sqlite3_errmsg(db);
        sqlite3_close(db);
        throw std::runtime_error("test query failed: " + sql + ": " + message);
      }
      if (stmt == nullptr) break;
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        auto& row = rows.emplace_back();
        for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          row.emplace_back(text != nullptr ? text : "");
        }
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return rows;
  }
  std::string index_query() const { return "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'tasks_due'"; }
};

struct PostgresBackend {
  std::string database = pg().create_database();
  std::string spec() const { return pg().uri(database); }
  std::vector<std::vector<std::string>> query(const std::string& sql) const { return pg().query(database, sql); }
  std::string index_query() const { return "SELECT indexname FROM pg_indexes WHERE indexname = 'tasks_due'"; }
};

std::unique_ptr<Store> open_store(const std::string& spec) {
  auto store = Store::open(spec);
  if (!store.ok()) FAIL(store.error().code << ": " << store.error().message);
  return std::move(store.value());
}

TaskRecord make_task(const std::string& id, std::optional<std::int64_t> next_due_ms = std::nullopt) {
  TaskRecord t;
  t.id = id;
  t.title = "Task " + id;
  t.schedule_kind = "cron";
  t.schedule_expr = "*/5 * * * *";
  t.timezone = "UTC";
  t.next_due_ms = next_due_ms;
  t.created_at_ms = t.updated_at_ms = 1000;
  return t;
}

RunRecord make_run(const std::string& id, const std::string& task_id, std::int64_t scheduled_for_ms,
                   const std::string& trigger = "manual") {
  RunRecord r;
  r.id = id;
  r.task_id = task_id;
  r.trigger = trigger;
  r.scheduled_for_ms = scheduled_for_ms;
  return r;
}

template <typename T>
T must(ordinaut::Result<T> r) {
  if (!r.ok()) FAIL(r.error().code << ": " << r.error().message);
  return std::move(r.value());
}

void must(ordinaut::Result<void> r) {
  if (!r.ok()) FAIL(r.error().code << ": " << r.error().message);
}

// The call failed with `code`, and its message names `mentions`.
template <typename T>
void expect_error(const ordinaut::Result<T>& r, const std::string& code, const std::string& mentions) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == code);
  CHECK_MESSAGE(r.error().message.find(mentions) != std::string::npos, r.error().message);
}

// A planner as the dispatcher will be: one running run for the occurrence at
// next_due_ms, then the next occurrence `period_ms` later.
Store::Planner every(std::int64_t period_ms, std::string id_prefix = "run") {
  return [period_ms, id_prefix](TaskRecord& task, std::int64_t) {
    RunRecord r;
    r.id = fmt::format("{}-{}-{}", id_prefix, task.id, *task.next_due_ms);
    r.status = "running";
    r.scheduled_for_ms = *task.next_due_ms;
    r.concurrency_key = task.concurrency_key;
    *task.next_due_ms += period_ms;
    return std::vector<RunRecord>{r};
  };
}

std::vector<std::string> ids_of(const std::vector<RunRecord>& runs) {
  std::vector<std::string> ids;
  for (const auto& r : runs) ids.push_back(r.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

#define BACKENDS SqliteBackend, PostgresBackend

TEST_CASE_TEMPLATE("store: open applies the versioned migrations once, also on reopen", B, BACKENDS) {
  B backend;
  {
    auto store = open_store(backend.spec());
    CHECK(store->schema_version() == 2);
    CHECK((store->backend() == "sqlite" || store->backend() == "postgresql"));
  }
  for (int i = 0; i < 2; ++i) {
    auto again = open_store(backend.spec());
    CHECK(again->schema_version() == 2);
  }
  const auto rows = backend.query("SELECT version FROM schema_migrations ORDER BY version");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][0] == "1");
  CHECK(rows[1][0] == "2");
}

TEST_CASE_TEMPLATE("store: a database at version 1 is migrated to 2, keeping its data", B, BACKENDS) {
  B backend;
  {
    auto store = open_store(backend.spec());
    must(store->insert_task(make_task("kept", 5000)));
  }
  // Plant the state an older server left: migration 2 not applied.
  backend.query("DROP INDEX tasks_due; DROP INDEX runs_by_task; DROP INDEX runs_by_time; DROP INDEX runs_claimable; "
                "DROP INDEX runs_concurrency; DROP INDEX runs_dedupe; DELETE FROM schema_migrations WHERE version = 2");
  CHECK(backend.query(backend.index_query()).empty());
  auto store = open_store(backend.spec());
  CHECK(store->schema_version() == 2);
  CHECK(backend.query(backend.index_query()).size() == 1);
  CHECK(backend.query("SELECT version FROM schema_migrations").size() == 2);
  auto kept = must(store->get_task("kept"));
  REQUIRE(kept.has_value());
  CHECK(kept->next_due_ms == 5000);
}

TEST_CASE_TEMPLATE("store: a database migrated by a newer server is refused", B, BACKENDS) {
  B backend;
  { open_store(backend.spec()); }
  backend.query("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)");
  expect_error(Store::open(backend.spec()), "store_schema_too_new", "99");
}

TEST_CASE_TEMPLATE("store: task CRUD keeps every field and bumps revisions", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  TaskRecord t = make_task("t1", 123456789012345);
  t.description = "O'Brien said \"hi\"; DROP TABLE tasks; -- ünïcödé";
  t.payload = R"({"params":{"x":1},"pipeline":[{"uses":"echo"}]})";
  t.priority = 9;
  t.max_retries = 3;
  t.backoff_strategy = "linear";
  t.dedupe_key = "dk";
  t.concurrency_key = "ck";
  t.catch_up = "run_once";
  t.dedupe_window_seconds = 60;
  t.enabled = false;
  t.skip_count = 2;
  t.snoozed_until_ms = 999;
  t.created_at_ms = 11;
  t.updated_at_ms = 22;
  must(store->insert_task(t));

  auto got = must(store->get_task("t1"));
  REQUIRE(got.has_value());
  CHECK(got->title == t.title);
  CHECK(got->description == t.description);
  CHECK(got->schedule_kind == "cron");
  CHECK(got->schedule_expr == "*/5 * * * *");
  CHECK(got->timezone == "UTC");
  CHECK(got->payload == t.payload);
  CHECK(got->priority == 9);
  CHECK(got->max_retries == 3);
  CHECK(got->backoff_strategy == "linear");
  CHECK(got->dedupe_key == "dk");
  CHECK(got->concurrency_key == "ck");
  CHECK(got->catch_up == "run_once");
  CHECK(got->dedupe_window_seconds == 60);
  CHECK(got->enabled == false);
  CHECK(got->next_due_ms == 123456789012345);
  CHECK(got->skip_count == 2);
  CHECK(got->snoozed_until_ms == 999);
  CHECK(got->created_at_ms == 11);
  CHECK(got->updated_at_ms == 22);
  CHECK(got->revision == 1);
  CHECK_FALSE(must(store->get_task("nope")).has_value());

  expect_error(store->insert_task(make_task("t1")), "conflict", "\"t1\"");

  TaskRecord changed = *got;
  changed.title = "renamed";
  changed.next_due_ms.reset();
  changed.snoozed_until_ms.reset();
  changed.created_at_ms = 77;  // not writable
  changed.updated_at_ms = 33;
  CHECK(must(store->update_task(changed, 1)));
  auto after = must(store->get_task("t1"));
  REQUIRE(after.has_value());
  CHECK(after->title == "renamed");
  CHECK_FALSE(after->next_due_ms.has_value());
  CHECK_FALSE(after->snoozed_until_ms.has_value());
  CHECK(after->created_at_ms == 11);
  CHECK(after->updated_at_ms == 33);
  CHECK(after->revision == 2);
  // A writer holding revision 1 lost the race: refused, nothing written.
  changed.title = "stale";
  CHECK_FALSE(must(store->update_task(changed, 1)));
  CHECK(must(store->get_task("t1"))->title == "renamed");
  CHECK_FALSE(must(store->update_task(make_task("ghost"), 1)));

  must(store->insert_run(make_run("r1", "t1", 100), 0));
  CHECK(must(store->delete_task("t1")));
  CHECK_FALSE(must(store->get_task("t1")).has_value());
  CHECK_FALSE(must(store->get_run("r1")).has_value());  // runs go with their task
  CHECK_FALSE(must(store->delete_task("t1")));
}

TEST_CASE_TEMPLATE("store: runs keep their fields; bad runs are refused", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t")));
  RunRecord r = make_run("r1", "t", 5000, "event");
  r.event = R"({"topic":"a.b","payload":{"k":"v"}})";
  r.steps = R"([{"id":"s1"}])";
  r.dedupe_key = "d";
  r.concurrency_key = "c";
  r.error = "boom";
  r.attempt = 3;
  r.started_at_ms = 5001;
  r.finished_at_ms = 5002;
  auto ins = must(store->insert_run(r, 0));
  CHECK(ins.inserted);
  auto got = must(store->get_run("r1"));
  REQUIRE(got.has_value());
  CHECK(got->task_id == "t");
  CHECK(got->status == "queued");
  CHECK(got->trigger == "event");
  CHECK(got->scheduled_for_ms == 5000);
  CHECK(got->started_at_ms == 5001);
  CHECK(got->finished_at_ms == 5002);
  CHECK_FALSE(got->lease_expires_ms.has_value());
  CHECK(got->attempt == 3);
  CHECK(got->steps == r.steps);
  CHECK(got->event == r.event);
  CHECK(got->error == "boom");
  CHECK(got->dedupe_key == "d");
  CHECK(got->concurrency_key == "c");
  CHECK_FALSE(got->cancel_requested);
  CHECK_FALSE(must(store->get_run("none")).has_value());

  expect_error(store->insert_run(r, 0), "conflict", "\"r1\"");
  expect_error(store->insert_run(make_run("r2", "missing", 1), 0), "not_found", "\"missing\"");
}

TEST_CASE_TEMPLATE("store: list_tasks pages by cursor and filters by enabled", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  for (int i = 0; i < 25; ++i) {
    TaskRecord t = make_task(fmt::format("task-{:02}", i));
    t.enabled = i % 5 != 0;  // 5 paused
    must(store->insert_task(t));
  }
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    TaskQuery q;
    q.limit = 10;
    q.cursor = cursor;
    auto page = must(store->list_tasks(q));
    for (const auto& t : page.tasks) seen.push_back(t.id);
    cursor = page.next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 10);
  CHECK(pages == 3);
  REQUIRE(seen.size() == 25);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 25);

  TaskQuery paused;
  paused.enabled = false;
  auto p = must(store->list_tasks(paused));
  CHECK(p.tasks.size() == 5);
  CHECK(p.next_cursor.empty());
  for (const auto& t : p.tasks) CHECK_FALSE(t.enabled);
  TaskQuery active;
  active.enabled = true;
  CHECK(must(store->list_tasks(active)).tasks.size() == 20);

  // An exact last page has no next cursor.
  TaskQuery all;
  all.limit = 25;
  CHECK(must(store->list_tasks(all)).next_cursor.empty());

  for (std::size_t bad : {std::size_t{0}, std::size_t{1001}}) {
    TaskQuery q;
    q.limit = bad;
    auto r = store->list_tasks(q);
    expect_error(r, "invalid_argument", fmt::format("limit {}", bad));
    CHECK(r.error().pointer == "/limit");
  }
  for (const char* bad : {"zz", "abc", "6"}) {
    TaskQuery q;
    q.cursor = bad;
    auto r = store->list_tasks(q);
    expect_error(r, "invalid_argument", "cursor");
    CHECK(r.error().pointer == "/cursor");
  }
}

TEST_CASE_TEMPLATE("store: list_runs is newest first, filtered, and pages", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("a")));
  must(store->insert_task(make_task("b")));
  for (int i = 0; i < 12; ++i) {
    RunRecord r = make_run(fmt::format("a-{:02}", i), "a", 1000 + (i / 2) * 10);  // pairs share a time
    if (i % 3 == 0) r.status = "succeeded";
    must(store->insert_run(r, 0));
  }
  must(store->insert_run(make_run("b-1", "b", 5000), 0));

  RunQuery q;
  q.task_id = "a";
  q.limit = 5;
  std::vector<RunRecord> seen;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = must(store->list_runs(q));
    seen.insert(seen.end(), page.runs.begin(), page.runs.end());
    if (page.next_cursor.empty()) break;
    q.cursor = page.next_cursor;
  }
  REQUIRE(seen.size() == 12);
  for (std::size_t i = 0; i + 1 < seen.size(); ++i) {
    const bool ordered = seen[i].scheduled_for_ms > seen[i + 1].scheduled_for_ms ||
                         (seen[i].scheduled_for_ms == seen[i + 1].scheduled_for_ms && seen[i].id > seen[i + 1].id);
    CHECK(ordered);
    CHECK(seen[i].task_id == "a");
  }
  CHECK(seen.front().id == "a-11");

  RunQuery all;
  auto everything = must(store->list_runs(all));
  CHECK(everything.runs.size() == 13);
  CHECK(everything.runs.front().id == "b-1");

  RunQuery done;
  done.task_id = "a";
  done.status = "succeeded";
  auto succeeded = must(store->list_runs(done));
  CHECK(succeeded.runs.size() == 4);
  for (const auto& r : succeeded.runs) CHECK(r.status == "succeeded");

  RunQuery bad;
  bad.cursor = "41";  // hex of "A": no "ms:id"
  expect_error(store->list_runs(bad), "invalid_argument", "cursor");
}

TEST_CASE_TEMPLATE("store: claim_due plans due enabled tasks once and leases their runs", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("due-early", 1000)));
  must(store->insert_task(make_task("due-late", 2000)));
  must(store->insert_task(make_task("future", 9000)));
  must(store->insert_task(make_task("unscheduled")));
  TaskRecord paused = make_task("paused", 1000);
  paused.enabled = false;
  must(store->insert_task(paused));
  TaskRecord snoozed = make_task("snoozed", 1500);
  snoozed.skip_count = 1;
  must(store->insert_task(snoozed));

  std::vector<std::string> planned;
  std::int64_t now = 3000;
  auto planner = [&](TaskRecord& task, std::int64_t now_ms) {
    CHECK(now_ms == now);
    planned.push_back(task.id);
    RunRecord r;
    r.id = "run-" + task.id;
    r.scheduled_for_ms = *task.next_due_ms;
    r.task_id = "ignored: the store sets it";
    if (task.skip_count > 0) {
      --task.skip_count;
      r.status = "skipped";
    } else {
      r.status = "running";
    }
    *task.next_due_ms += 60000;
    return std::vector<RunRecord>{r};
  };
  auto claimed = must(store->claim_due(3000, "server-1", 500, 100, planner));
  CHECK(planned == std::vector<std::string>{"due-early", "snoozed", "due-late"});  // due order; not paused
  CHECK(ids_of(claimed) == std::vector<std::string>{"run-due-early", "run-due-late"});
  for (const auto& r : claimed) {
    CHECK(r.status == "running");
    CHECK(r.lease_owner == "server-1");
    CHECK(r.lease_expires_ms == 3500);
    CHECK(r.started_at_ms == 3000);
    CHECK(r.task_id == r.id.substr(4));
  }
  auto early = must(store->get_task("due-early"));
  CHECK(early->next_due_ms == 61000);
  CHECK(early->revision == 2);
  CHECK(early->updated_at_ms == 3000);
  auto s = must(store->get_task("snoozed"));
  CHECK(s->skip_count == 0);
  auto skipped = must(store->get_run("run-snoozed"));
  REQUIRE(skipped.has_value());
  CHECK(skipped->status == "skipped");
  CHECK(skipped->finished_at_ms == 3000);
  CHECK(skipped->lease_owner.empty());
  auto stored = must(store->get_run("run-due-late"));
  REQUIRE(stored.has_value());
  CHECK(stored->status == "running");
  CHECK(stored->lease_owner == "server-1");
  CHECK(stored->lease_expires_ms == 3500);
  CHECK(stored->task_id == "due-late");

  // Nothing is due any more at the same time.
  planned.clear();
  CHECK(must(store->claim_due(3000, "server-1", 500, 100, planner)).empty());
  CHECK(planned.empty());
  // limit bounds the tasks visited.
  now = 70000;
  CHECK(must(store->claim_due(now, "server-1", 500, 1, planner)).size() == 1);
  CHECK(planned.size() == 1);
}

TEST_CASE_TEMPLATE("store: an occurrence is inserted once even when a planner repeats it", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t", 1000)));
  int calls = 0;
  // A planner that does not move the task: the same occurrence again.
  auto stuck = [&](TaskRecord& task, std::int64_t) {
    ++calls;
    RunRecord r;
    r.id = fmt::format("run-{}", calls);
    r.status = "running";
    r.scheduled_for_ms = *task.next_due_ms;
    return std::vector<RunRecord>{r};
  };
  CHECK(must(store->claim_due(1000, "s", 100, 10, stuck)).size() == 1);
  CHECK(must(store->claim_due(1000, "s", 100, 10, stuck)).empty());
  CHECK(calls == 2);  // one visit per call, however the planner moves the task
  RunQuery q;
  q.task_id = "t";
  CHECK(must(store->list_runs(q)).runs.size() == 1);
  // A manual run at the same instant is another thing entirely.
  RunRecord manual = make_run("manual", "t", 1000, "manual");
  CHECK(must(store->insert_run(manual, 0)).inserted);
}

TEST_CASE_TEMPLATE("store: two stores and many threads claim each occurrence exactly once", B, BACKENDS) {
  B backend;
  auto first = open_store(backend.spec());
  auto second = open_store(backend.spec());
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) must(first->insert_task(make_task(fmt::format("t{:02}", i), 1000 + i)));

  std::mutex mu;
  std::vector<RunRecord> all;
  std::vector<std::string> errors;
  auto worker = [&](Store& store, std::string owner, const Store::Planner& planner, std::int64_t now_ms,
                    std::size_t limit) {
    for (int round = 0; round < 30; ++round) {
      auto got = store.claim_due(now_ms, owner, 1000, limit, planner);
      std::lock_guard lock(mu);
      if (!got.ok()) {
        errors.push_back(got.error().message);
        return;
      }
      for (auto& r : got.value()) all.push_back(std::move(r));
    }
  };
  // Round 1: planners that move tasks on. Round 2: planners that repeat the
  // occurrence (as two servers that both computed it would): the UNIQUE
  // occurrence stops every second insert.
  // Row locks (SKIP LOCKED / BEGIN IMMEDIATE) mean a task is even planned
  // once per occurrence, not only inserted once.
  std::map<std::pair<std::string, std::int64_t>, int> planned;
  const Store::Planner move_on = [&, next = every(60000)](TaskRecord& task, std::int64_t now_ms) {
    {
      std::lock_guard lock(mu);
      ++planned[{task.id, *task.next_due_ms}];
    }
    return next(task, now_ms);
  };
  for (int phase = 0; phase < 2; ++phase) {
    const std::int64_t now = phase == 0 ? 2000 : 70000;
    auto planner = phase == 0 ? move_on : [](TaskRecord& task, std::int64_t) {
      RunRecord r;
      r.id = fmt::format("dup-{}-{}", task.id, std::hash<std::thread::id>{}(std::this_thread::get_id()));
      r.status = "running";
      r.scheduled_for_ms = *task.next_due_ms;
      return std::vector<RunRecord>{r};
    };
    // Phase 2 planners never move a task, so each call must visit them all.
    const std::size_t limit = phase == 0 ? 3 : 100;
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      Store& s = i % 2 == 0 ? *first : *second;
      threads.emplace_back(worker, std::ref(s), fmt::format("owner-{}", i), planner, now, limit);
    }
    for (auto& t : threads) t.join();
    worker(*first, "sweeper", planner, now, 100);  // whatever SKIP LOCKED left for later
  }
  CHECK(errors.empty());
  CHECK(planned.size() == kTasks);
  for (const auto& [occurrence, count] : planned) CHECK_MESSAGE(count == 1, occurrence.first);
  std::map<std::pair<std::string, std::int64_t>, int> per_occurrence;
  for (const auto& r : all) ++per_occurrence[{r.task_id, r.scheduled_for_ms}];
  CHECK(all.size() == 2 * kTasks);
  CHECK(per_occurrence.size() == 2 * kTasks);
  for (const auto& [occurrence, count] : per_occurrence) CHECK_MESSAGE(count == 1, occurrence.first);
  const auto rows = backend.query("SELECT COUNT(*) FROM runs");
  CHECK(rows.at(0).at(0) == std::to_string(2 * kTasks));
}

TEST_CASE_TEMPLATE("store: a run whose lease expired is taken over and the old owner is fenced", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t")));
  must(store->insert_run(make_run("r", "t", 900), 0));

  auto a = must(store->claim_runs(1000, "server-a", 500, 10));
  REQUIRE(a.size() == 1);
  CHECK(a[0].attempt == 1);
  CHECK(a[0].lease_owner == "server-a");
  CHECK(a[0].lease_expires_ms == 1500);
  CHECK(a[0].started_at_ms == 1000);
  CHECK(must(store->claim_runs(1499, "server-b", 500, 10)).empty());  // lease live
  CHECK(must(store->renew_lease("r", "server-a", 2000)));
  CHECK_FALSE(must(store->renew_lease("r", "server-b", 9000)));
  CHECK(must(store->claim_runs(1999, "server-b", 500, 10)).empty());

  // server-a died: at its lease's end, server-b takes the run over.
  auto b = must(store->claim_runs(2000, "server-b", 500, 10));
  REQUIRE(b.size() == 1);
  CHECK(b[0].id == "r");
  CHECK(b[0].attempt == 2);
  CHECK(b[0].lease_owner == "server-b");
  CHECK(b[0].lease_expires_ms == 2500);

  // server-a comes back: every write of its old attempt is refused.
  CHECK_FALSE(must(store->renew_lease("r", "server-a", 9000)));
  RunRecord stale = a[0];
  stale.status = "succeeded";
  stale.finished_at_ms = 2100;
  CHECK_FALSE(must(store->update_run(stale, "server-a")));
  RunRecord same_owner_old_attempt = b[0];
  same_owner_old_attempt.attempt = 1;
  CHECK_FALSE(must(store->update_run(same_owner_old_attempt, "server-b")));

  RunRecord done = b[0];
  done.status = "failed";
  done.finished_at_ms = 2200;
  done.lease_expires_ms.reset();
  done.steps = R"([{"id":"s","status":"failed"}])";
  done.error = "step s failed";
  CHECK(must(store->update_run(done, "server-b")));
  CHECK_FALSE(must(store->update_run(done, "server-b")));  // finished: no more writes
  auto got = must(store->get_run("r"));
  REQUIRE(got.has_value());
  CHECK(got->status == "failed");
  CHECK(got->attempt == 2);
  CHECK(got->finished_at_ms == 2200);
  CHECK(got->steps == done.steps);
  CHECK(got->error == "step s failed");
  CHECK(must(store->claim_runs(99999, "server-c", 500, 10)).empty());
}

TEST_CASE_TEMPLATE("store: a concurrency key admits one live run at a time", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t")));
  for (auto [id, key, at] : {std::tuple{"k1", "K", 100}, std::tuple{"k2", "K", 200}, std::tuple{"o1", "other", 300},
                             std::tuple{"free", "", 400}}) {
    RunRecord r = make_run(id, "t", at);
    r.concurrency_key = key;
    must(store->insert_run(r, 0));
  }
  auto first = must(store->claim_runs(1000, "s", 500, 10));
  CHECK(ids_of(first) == std::vector<std::string>{"free", "k1", "o1"});
  CHECK(must(store->claim_runs(1100, "s", 500, 10)).empty());  // k2 waits for k1

  // k1's server dies: at expiry k1 itself is taken over first; k2 still waits.
  auto takeover = must(store->claim_runs(1500, "s2", 500, 10));
  CHECK(ids_of(takeover) == std::vector<std::string>{"free", "k1", "o1"});
  RunRecord k1 = *must(store->get_run("k1"));
  k1.status = "succeeded";
  k1.finished_at_ms = 1600;
  CHECK(must(store->update_run(k1, "s2")));
  auto next = must(store->claim_runs(1600, "s2", 500, 10));
  CHECK(ids_of(next) == std::vector<std::string>{"k2"});

  // claim_due queues (does not start) a planned run whose key is held.
  TaskRecord keyed = make_task("keyed", 1000);
  keyed.concurrency_key = "K";
  must(store->insert_task(keyed));
  auto planned = must(store->claim_due(1700, "s3", 500, 10, every(60000, "p")));
  CHECK(planned.empty());
  auto queued = must(store->get_run("p-keyed-1000"));
  REQUIRE(queued.has_value());
  CHECK(queued->status == "queued");
  CHECK(queued->lease_owner.empty());
  CHECK_FALSE(queued->lease_expires_ms.has_value());
  // ... and with the key free, it starts at once.
  RunRecord k2 = next[0];
  k2.status = "succeeded";
  CHECK(must(store->update_run(k2, "s2")));
  auto started = must(store->claim_due(61000, "s3", 500, 10, every(60000, "p")));
  CHECK(ids_of(started) == std::vector<std::string>{"p-keyed-61000"});
  // The queued one now waits for the started one (free and o1, long
  // expired, are taken over meanwhile).
  auto later = must(store->claim_runs(61001, "s3", 500, 10));
  CHECK(ids_of(later) == std::vector<std::string>{"free", "o1"});
  CHECK(must(store->get_run("p-keyed-1000"))->status == "queued");
}

TEST_CASE_TEMPLATE("store: insert_run deduplicates by key within the window", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t")));
  auto with_key = [](const std::string& id, std::int64_t at) {
    RunRecord r = make_run(id, "t", at);
    r.dedupe_key = "order-42";
    return r;
  };
  auto first = must(store->insert_run(with_key("d1", 10000), 5000));
  CHECK(first.inserted);
  auto inside = must(store->insert_run(with_key("d2", 14999), 5000));
  CHECK_FALSE(inside.inserted);
  CHECK(inside.run.id == "d1");
  CHECK_FALSE(must(store->get_run("d2")).has_value());
  CHECK(must(store->insert_run(with_key("d3", 15001), 5000)).inserted);  // outside the window
  CHECK(must(store->insert_run(with_key("d4", 15002), 0)).inserted);     // no window: no dedupe
  RunRecord other = with_key("d5", 10001);
  other.dedupe_key = "order-43";
  CHECK(must(store->insert_run(other, 5000)).inserted);
  // A cancelled run does not hold its key.
  CHECK(must(store->request_cancel("d3")));
  CHECK(must(store->request_cancel("d4")));
  auto after_cancel = must(store->insert_run(with_key("d6", 16000), 5000));  // d3, d4 in window
  CHECK(after_cancel.inserted);
}

TEST_CASE_TEMPLATE("store: cancel finishes a queued run and flags a running one", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t")));
  must(store->insert_run(make_run("q", "t", 100), 0));
  must(store->insert_run(make_run("r", "t", 50), 0));
  REQUIRE(must(store->claim_runs(1000, "s", 500, 1)).size() == 1);  // "r", the older one

  CHECK(must(store->request_cancel("q")));
  auto q = must(store->get_run("q"));
  CHECK(q->status == "cancelled");
  CHECK(q->finished_at_ms.has_value());
  CHECK(must(store->claim_runs(1000, "s", 500, 10)).empty());  // a cancelled run is never claimed

  CHECK_FALSE(must(store->cancel_requested("r")));
  CHECK(must(store->request_cancel("r")));
  CHECK(must(store->cancel_requested("r")));
  CHECK(must(store->get_run("r"))->status == "running");  // the executor stops it cooperatively
  RunRecord r = *must(store->get_run("r"));
  r.status = "cancelled";
  r.finished_at_ms = 1200;
  CHECK(must(store->update_run(r, "s")));
  CHECK(must(store->cancel_requested("r")));
  CHECK_FALSE(must(store->request_cancel("r")));  // finished
  CHECK_FALSE(must(store->request_cancel("unknown")));
  CHECK_FALSE(must(store->cancel_requested("unknown")));
}

TEST_CASE_TEMPLATE("store: prune_runs keeps by age and by count, never unfinished runs", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("a")));
  must(store->insert_task(make_task("b")));
  // a: 6 finished runs finished at 1000..6000, one queued (oldest), one running.
  for (int i = 1; i <= 6; ++i) {
    RunRecord r = make_run(fmt::format("a{}", i), "a", i * 1000 - 10);
    r.status = i % 2 == 0 ? "succeeded" : "failed";
    r.finished_at_ms = i * 1000;
    must(store->insert_run(r, 0));
  }
  must(store->insert_run(make_run("a-queued", "a", 1), 0));
  must(store->insert_run(make_run("a-running", "a", 2), 0));
  REQUIRE(must(store->claim_runs(10, "s", 1000000, 1)).size() == 1);  // a-queued (older) -> running
  must(store->insert_run(make_run("a-queued-2", "a", 3), 0));
  // b: 2 skipped runs without finished_at (scheduled time counts).
  for (int i = 1; i <= 2; ++i) {
    RunRecord r = make_run(fmt::format("b{}", i), "b", i * 1000);
    r.status = "skipped";
    must(store->insert_run(r, 0));
  }
  // Age: finished before 2500 -> a1, a2, b1, b2 (scheduled 2000 < 2500).
  CHECK(must(store->prune_runs(2500, 0)) == 4);
  CHECK_FALSE(must(store->get_run("a2")).has_value());
  CHECK(must(store->get_run("a3")).has_value());
  // Count: keep the newest 2 finished of each task -> a3, a4 go.
  CHECK(must(store->prune_runs(0, 2)) == 2);
  RunQuery q;
  q.task_id = "a";
  std::vector<std::string> left;
  for (const auto& r : must(store->list_runs(q)).runs) left.push_back(r.id);
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"a-queued", "a-queued-2", "a-running", "a5", "a6"});
  CHECK(must(store->prune_runs(0, 2)) == 0);  // idempotent
  // Even "everything is old" leaves unfinished runs.
  CHECK(must(store->prune_runs(std::numeric_limits<std::int64_t>::max(), 0)) == 2);
  CHECK(must(store->list_runs(q)).runs.size() == 3);
}

TEST_CASE_TEMPLATE("store: data survives closing and reopening the store", B, BACKENDS) {
  B backend;
  {
    auto store = open_store(backend.spec());
    must(store->insert_task(make_task("t", 4242)));
    must(store->insert_run(make_run("r", "t", 1), 0));
    REQUIRE(must(store->claim_runs(10, "s", 100, 1)).size() == 1);
  }
  auto store = open_store(backend.spec());
  auto t = must(store->get_task("t"));
  REQUIRE(t.has_value());
  CHECK(t->next_due_ms == 4242);
  auto r = must(store->get_run("r"));
  REQUIRE(r.has_value());
  CHECK(r->status == "running");
  CHECK(r->lease_expires_ms == 110);
  // The lease outlived the store that held it: another server takes it over.
  auto taken = must(store->claim_runs(110, "s2", 100, 1));
  REQUIRE(taken.size() == 1);
  CHECK(taken[0].attempt == 2);
}

TEST_CASE_TEMPLATE("store: next_wake_ms is the earliest due enabled task or lease expiry", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  CHECK_FALSE(must(store->next_wake_ms()).has_value());  // empty store: nothing to wait for
  must(store->insert_task(make_task("unscheduled")));
  TaskRecord paused = make_task("paused", 100);
  paused.enabled = false;
  must(store->insert_task(paused));
  CHECK_FALSE(must(store->next_wake_ms()).has_value());  // paused and unscheduled tasks never wake it
  must(store->insert_task(make_task("later", 9000)));
  must(store->insert_task(make_task("sooner", 5000)));
  CHECK(must(store->next_wake_ms()) == 5000);
  // Queued and finished runs do not count; a running run's lease expiry does.
  must(store->insert_run(make_run("queued", "later", 10), 0));
  RunRecord done = make_run("done", "later", 20);
  done.status = "succeeded";
  done.lease_expires_ms = 30;
  must(store->insert_run(done, 0));
  CHECK(must(store->next_wake_ms()) == 5000);
  auto claimed = must(store->claim_runs(1000, "server-1", 2500, 10));
  REQUIRE(ids_of(claimed) == std::vector<std::string>{"queued"});
  CHECK(must(store->next_wake_ms()) == 3500);  // the lease expires before "sooner" is due
  CHECK(must(store->renew_lease("queued", "server-1", 7000)));
  CHECK(must(store->next_wake_ms()) == 5000);
  // Claiming "sooner" moves it on: the next wake follows.
  must(store->claim_due(5000, "server-1", 100'000, 10, every(10'000)));
  CHECK(must(store->next_wake_ms()) == 7000);
  RunRecord finished = claimed[0];
  finished.status = "succeeded";
  finished.finished_at_ms = 6000;
  CHECK(must(store->update_run(finished, "server-1")));
  CHECK(must(store->next_wake_ms()) == 9000);
  // Disabling a task takes it out.
  auto later = must(store->get_task("later"));
  later->enabled = false;
  CHECK(must(store->update_task(*later, later->revision)));
  CHECK(must(store->next_wake_ms()) == 15000);
}

TEST_CASE_TEMPLATE("store: claims with limit 0 do nothing", B, BACKENDS) {
  B backend;
  auto store = open_store(backend.spec());
  must(store->insert_task(make_task("t", 1)));
  must(store->insert_run(make_run("r", "t", 1), 0));
  bool called = false;
  auto planner = [&](TaskRecord&, std::int64_t) {
    called = true;
    return std::vector<RunRecord>{};
  };
  CHECK(must(store->claim_due(100, "s", 10, 0, planner)).empty());
  CHECK_FALSE(called);
  CHECK(must(store->claim_runs(100, "s", 10, 0)).empty());
  CHECK(must(store->get_run("r"))->status == "queued");
}

TEST_CASE("store: bad specs are refused with invalid_store naming the problem") {
  struct Case {
    const char* spec;
    const char* code;
    const char* mentions;
  };
  for (const Case& c : {Case{"", "invalid_store", "empty"}, Case{"mysql://u:secret@h/db", "invalid_store", "\"mysql\""},
                        Case{"sqlite:", "invalid_store", "no file path"},
                        Case{"sqlite::memory:", "invalid_store", "not a plain file"},
                        Case{"postgresql://h/db?nosuchoption=1", "invalid_store", "nosuchoption"},
                        Case{"postgresql://postgres@127.0.0.1:1/none?connect_timeout=5", "store_unavailable",
                             "cannot connect"}}) {
    CAPTURE(c.spec);
    auto store = Store::open(c.spec);
    expect_error(store, c.code, c.mentions);
    CHECK(store.error().message.find("secret") == std::string::npos);
  }
  test_support::TempDir dir;
  test_support::write_file(dir.path() / "file", "x");
  expect_error(Store::open("sqlite:" + (dir.path() / "file" / "db.sqlite").string()), "store_unavailable",
               "cannot create the folder");
}

TEST_CASE("store: sqlite runs in WAL mode with foreign keys") {
  SqliteBackend backend;
  auto store = open_store(backend.spec());
  CHECK(store->backend() == "sqlite");
  CHECK(backend.query("PRAGMA journal_mode").at(0).at(0) == "wal");
  CHECK(std::filesystem::exists(backend.file()));
}

TEST_CASE("store: postgresql reconnects once when its session was killed") {
  PostgresBackend backend;
  auto store = open_store(backend.spec());
  CHECK(store->backend() == "postgresql");
  must(store->insert_task(make_task("t")));
  const auto killed = backend.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
      "pg_backend_pid()");
  REQUIRE(killed.size() == 1);
  auto got = must(store->get_task("t"));
  CHECK(got.has_value());
  must(store->insert_task(make_task("u")));
  CHECK(must(store->get_task("u")).has_value());
}

TEST_CASE("pg_server: a server is stopped and its folder removed when a failing test unwinds") {
  pid_t pid = -1;
  std::filesystem::path folder;
  try {
    test_support::PgServer server;
    pid = server.pid();
    folder = server.folder();
    REQUIRE(pid > 0);
    CHECK(PQping(server.uri().c_str()) == PQPING_OK);
    throw std::runtime_error("as a failed REQUIRE does");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "as a failed REQUIRE does");
  }
  REQUIRE(pid > 0);
  CHECK(::kill(pid, 0) == -1);  // reaped: no such process
  CHECK_FALSE(std::filesystem::exists(folder));
}
