#include "service.hpp"

#include <algorithm>
#include <atomic>
#include <utility>

#include <fmt/format.h>

namespace ordinaut::scheduler {

namespace {

// Missed occurrences walked one by one (inside the claim transaction); past
// this many, the latest one at or before now is found by bisection instead.
constexpr std::size_t kMaxCatchUpScan = 1000;
constexpr std::size_t kMaxCachedSchedules = 10'000;
constexpr std::int64_t kEventDedupeWindowMs = 24LL * 3600 * 1000;

Error with_pointer(Error e, std::string pointer) {
  if (e.pointer.empty()) e.pointer = std::move(pointer);
  return e;
}

// An unknown task or run id (404 over REST).
Error not_found(std::string_view kind, std::string_view id) {
  Error e = make_error("not_found", fmt::format("no {} has the id \"{}\"", kind, id));
  e.pointer = "/id";
  return e;
}

Error bad_field(std::string_view field, std::string message) {
  Error e = make_error("invalid_arguments", std::move(message));
  e.pointer = "/" + std::string(field);
  return e;
}

Instant to_instant(std::int64_t unix_ms) {
  // Floor, so that an occurrence at second s counts as due from s.000.
  std::int64_t s = unix_ms / 1000;
  if (unix_ms % 1000 < 0) --s;
  return Instant(std::chrono::seconds(s));
}

std::int64_t to_ms(Instant t) { return static_cast<std::int64_t>(t.time_since_epoch().count()) * 1000; }

void set_string(Json& doc, std::string_view key, std::string_view value) {
  auto& a = doc.GetAllocator();
  doc.AddMember(JsonValue(key.data(), static_cast<rapidjson::SizeType>(key.size()), a),
                JsonValue(value.data(), static_cast<rapidjson::SizeType>(value.size()), a), a);
}

void set_value(Json& doc, std::string_view key, JsonValue value) {
  auto& a = doc.GetAllocator();
  doc.AddMember(JsonValue(key.data(), static_cast<rapidjson::SizeType>(key.size()), a), value, a);
}

void set_time(Json& doc, std::string_view key, const std::optional<std::int64_t>& ms) {
  if (ms) {
    set_string(doc, key, format_rfc3339_ms(*ms));
  } else {
    set_value(doc, key, JsonValue(rapidjson::kNullType));
  }
}

// Parses stored JSON text into `doc`'s allocator; null when empty or broken.
JsonValue stored_json(Json& doc, const std::string& text) {
  if (text.empty()) return JsonValue(rapidjson::kNullType);
  auto parsed = json::parse(text);
  if (!parsed) return JsonValue(rapidjson::kNullType);
  return JsonValue(*parsed, doc.GetAllocator());
}

Json task_json(const TaskRecord& t) {
  Json doc = json::object();
  set_string(doc, "id", t.id);
  set_string(doc, "title", t.title);
  set_string(doc, "description", t.description);
  set_string(doc, "schedule_kind", t.schedule_kind);
  set_string(doc, "schedule_expr", t.schedule_expr);
  set_string(doc, "timezone", t.timezone);
  set_value(doc, "payload", stored_json(doc, t.payload));
  set_value(doc, "priority", JsonValue(t.priority));
  set_value(doc, "max_retries", JsonValue(t.max_retries));
  set_string(doc, "backoff_strategy", t.backoff_strategy);
  set_string(doc, "dedupe_key", t.dedupe_key);
  set_value(doc, "dedupe_window_seconds", JsonValue(t.dedupe_window_seconds));
  set_string(doc, "concurrency_key", t.concurrency_key);
  set_value(doc, "enabled", JsonValue(t.enabled));
  set_string(doc, "catch_up", t.catch_up);
  set_time(doc, "next_due_at", t.next_due_ms);
  set_value(doc, "skip_count", JsonValue(t.skip_count));
  set_time(doc, "snoozed_until", t.snoozed_until_ms);
  set_string(doc, "created_at", format_rfc3339_ms(t.created_at_ms));
  set_string(doc, "updated_at", format_rfc3339_ms(t.updated_at_ms));
  set_value(doc, "revision", JsonValue(t.revision));
  return doc;
}

Json run_json(const RunRecord& r) {
  Json doc = json::object();
  set_string(doc, "id", r.id);
  set_string(doc, "task_id", r.task_id);
  set_string(doc, "status", r.status);
  set_string(doc, "trigger", r.trigger);
  set_value(doc, "attempt", JsonValue(r.attempt));
  set_string(doc, "scheduled_for", format_rfc3339_ms(r.scheduled_for_ms));
  set_time(doc, "started_at", r.started_at_ms);
  set_time(doc, "finished_at", r.finished_at_ms);
  JsonValue steps = stored_json(doc, r.steps);
  if (!steps.IsArray()) steps.SetArray();
  set_value(doc, "steps", std::move(steps));
  set_value(doc, "error", stored_json(doc, r.error));
  if (!r.event.empty()) set_value(doc, "event", stored_json(doc, r.event));
  return doc;
}

Json error_json(const Error& e, std::string_view step = {}) {
  Json doc = json::object();
  set_string(doc, "code", e.code);
  set_string(doc, "message", e.message);
  if (!step.empty()) set_string(doc, "step", step);
  return doc;
}

// {"<key>": [items as JSON], "next_cursor": cursor or null}: a page of a list.
template <typename Record>
Json page_json(const char* key, const std::vector<Record>& items, Json (*to_json)(const Record&),
               const std::string& next_cursor) {
  Json doc = json::object();
  JsonValue list(rapidjson::kArrayType);
  for (const auto& item : items) list.PushBack(JsonValue(to_json(item), doc.GetAllocator()), doc.GetAllocator());
  set_value(doc, key, std::move(list));
  if (next_cursor.empty()) {
    set_value(doc, "next_cursor", JsonValue(rapidjson::kNullType));
  } else {
    set_string(doc, "next_cursor", next_cursor);
  }
  return doc;
}

// The fields a task input may set, read defensively: the tools' schemas have
// checked them already, REST callers too, but the service never trusts that.
Result<void> apply_fields(TaskRecord& t, const JsonValue& in) {
  if (!in.IsObject()) return make_error("invalid_arguments", fmt::format("expected an object, got {}", json::type_name(in)));
  auto string_field = [&](const char* key, std::string& out, std::size_t max) -> Result<void> {
    auto it = in.FindMember(key);
    if (it == in.MemberEnd()) return {};
    if (!it->value.IsString()) return bad_field(key, fmt::format("{} must be a string", key));
    if (it->value.GetStringLength() > max) {
      return bad_field(key, fmt::format("{} is {} bytes long, more than {}", key, it->value.GetStringLength(), max));
    }
    out.assign(it->value.GetString(), it->value.GetStringLength());
    return {};
  };
  auto int_field = [&](const char* key, auto& out, std::int64_t lo, std::int64_t hi) -> Result<void> {
    auto it = in.FindMember(key);
    if (it == in.MemberEnd()) return {};
    if (!it->value.IsInt64() || it->value.GetInt64() < lo || it->value.GetInt64() > hi) {
      return bad_field(key, fmt::format("{} must be an integer from {} to {}", key, lo, hi));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(it->value.GetInt64());
    return {};
  };
  for (auto r : {string_field("title", t.title, 200), string_field("description", t.description, 4000),
                 string_field("schedule_kind", t.schedule_kind, 16), string_field("schedule_expr", t.schedule_expr, 2000),
                 string_field("timezone", t.timezone, 64), string_field("backoff_strategy", t.backoff_strategy, 32),
                 string_field("dedupe_key", t.dedupe_key, 200), string_field("concurrency_key", t.concurrency_key, 200),
                 string_field("catch_up", t.catch_up, 16), int_field("priority", t.priority, 1, 9),
                 int_field("max_retries", t.max_retries, 0, 100),
                 int_field("dedupe_window_seconds", t.dedupe_window_seconds, 0, 31'536'000)}) {
    if (!r) return r;
  }
  if (auto it = in.FindMember("enabled"); it != in.MemberEnd()) {
    if (!it->value.IsBool()) return bad_field("enabled", "enabled must be true or false");
    t.enabled = it->value.GetBool();
  }
  if (auto it = in.FindMember("payload"); it != in.MemberEnd()) {
    if (!it->value.IsObject()) return bad_field("payload", "payload must be an object with params and pipeline");
    t.payload = json::dump(it->value);
  }
  if (t.title.empty()) return bad_field("title", "title must not be empty");
  if (t.timezone.empty()) t.timezone = "UTC";
  if (t.catch_up != "skip" && t.catch_up != "run_once") {
    return bad_field("catch_up", fmt::format("catch_up \"{}\" is not one of skip, run_once", t.catch_up));
  }
  return {};
}

// The first occurrence strictly after `from`: a task created or resumed at
// 09:00:00.4 with "0 9 * * *" first runs tomorrow, not at once.
std::optional<Instant> first_after(const Schedule& s, Instant from) { return s.next_after(from); }

}  // namespace

// A run executing on this server.
// A run executing on this server. The lease fields are written by the
// dispatcher (renew_leases) and read by the worker running the run.
struct Service::Active {
  std::string task_id;
  CancelToken token;
  std::atomic<std::int64_t> lease_expires_ms{0};
  std::atomic<bool> lease_lost{false};
  // Cancelled because this server is stopping, not by a user: the run goes
  // back to the queue for the next server (or this one after a restart).
  std::atomic<bool> released{false};
};

Service::Service(std::unique_ptr<Store> store, ToolView tools, ServiceOptions options)
    : store_(std::move(store)), tools_(tools), options_(std::move(options)), random_(std::random_device{}()) {
  if (options_.workers == 0) options_.workers = 1;
  if (options_.lease_ms < 1000) options_.lease_ms = 1000;
  if (!options_.now_ms) {
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  if (options_.owner.empty()) options_.owner = new_id("srv");
}

Service::~Service() { shutdown(); }

std::int64_t Service::now() const { return options_.now_ms(); }

std::string Service::new_id(std::string_view prefix) {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  {
    std::lock_guard lock(mutex_);
    a = random_();
    b = random_();
  }
  return fmt::format("{}_{:016x}{:08x}", prefix, a, static_cast<std::uint32_t>(b));
}

void Service::emit(std::string topic, Json body) {
  Change change{std::move(topic), std::move(body)};
  std::vector<std::function<void(const Change&)>> listeners;
  {
    std::lock_guard lock(listeners_mutex_);
    for (auto& [id, l] : listeners_) listeners.push_back(l);
  }
  for (auto& l : listeners) l(change);
}

std::uint64_t Service::on_change(std::function<void(const Change&)> listener) {
  std::lock_guard lock(listeners_mutex_);
  const std::uint64_t id = next_listener_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void Service::remove_listener(std::uint64_t id) {
  std::lock_guard lock(listeners_mutex_);
  listeners_.erase(id);
}

void Service::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_cv_.notify_all();
}

std::size_t Service::active_runs() const {
  std::lock_guard lock(mutex_);
  return active_.size();
}

Result<Schedule> Service::schedule_of(const TaskRecord& task) {
  auto same = [&](const CachedSchedule& c) {
    return c.kind == task.schedule_kind && c.expr == task.schedule_expr && c.timezone == task.timezone &&
           c.created_at_ms == task.created_at_ms;
  };
  if (!task.id.empty()) {
    std::lock_guard lock(schedules_mutex_);
    if (auto it = schedules_.find(task.id); it != schedules_.end() && same(it->second)) return it->second.schedule;
  }
  auto kind = parse_schedule_kind(task.schedule_kind);
  if (!kind) {
    return bad_field("schedule_kind", fmt::format("schedule_kind \"{}\" is not one of cron, rrule, once, event, manual",
                                                  task.schedule_kind));
  }
  auto s = Schedule::compile(*kind, task.schedule_expr, task.timezone, to_instant(task.created_at_ms));
  if (!s) return with_pointer(s.error(), s.error().code == "unknown_timezone" ? "/timezone" : "/schedule_expr");
  if (!task.id.empty()) {  // a task being created has no id yet
    std::lock_guard lock(schedules_mutex_);
    if (schedules_.size() >= kMaxCachedSchedules && !schedules_.contains(task.id)) schedules_.erase(schedules_.begin());
    schedules_.insert_or_assign(task.id, CachedSchedule{task.schedule_kind, task.schedule_expr, task.timezone,
                                                        task.created_at_ms, *s});
  }
  return s;
}

Result<TaskRecord> Service::load_task(std::string_view id) {
  auto t = store_->get_task(id);
  if (!t) return t.error();
  if (!t->has_value()) {
    return not_found("task", id);
  }
  return std::move(**t);
}

namespace {

// Checks everything about a task that a schema cannot: the schedule, the
// pipeline against the registry, the backoff. Returns the compiled schedule.
Result<Schedule> validate_task(const TaskRecord& t, const ToolView& tools,
                               const std::function<Result<Schedule>(const TaskRecord&)>& compile) {
  auto schedule = compile(t);
  if (!schedule) return schedule.error();
  auto payload = json::parse(t.payload);
  if (!payload) return with_pointer(payload.error(), "/payload");
  static const JsonValue empty_array(rapidjson::kArrayType);
  static const JsonValue empty_object(rapidjson::kObjectType);
  const JsonValue* pipeline_json = &empty_array;
  const JsonValue* params = &empty_object;
  if (auto it = payload->FindMember("pipeline"); it != payload->MemberEnd()) pipeline_json = &it->value;
  if (auto it = payload->FindMember("params"); it != payload->MemberEnd()) {
    if (!it->value.IsObject()) return bad_field("payload/params", "payload.params must be an object");
    params = &it->value;
  }
  auto pipeline = parse_pipeline(*pipeline_json, "/payload/pipeline");
  if (!pipeline) return pipeline.error();
  if (auto checked = check_pipeline(*pipeline, *params, tools, "/payload/pipeline"); !checked) return checked.error();
  if (auto backoff = Backoff::parse(t.backoff_strategy); !backoff) return with_pointer(backoff.error(), "/backoff_strategy");
  return schedule;
}

}  // namespace

Result<Json> Service::create_task(const JsonValue& input) {
  TaskRecord t;
  t.created_at_ms = t.updated_at_ms = now();
  if (auto r = apply_fields(t, input); !r) return r.error();
  auto schedule = validate_task(t, tools_, [this](const TaskRecord& task) { return schedule_of(task); });
  if (!schedule) return schedule.error();
  t.id = new_id("tsk");
  if (schedule->kind() == ScheduleKind::once) {
    auto when = schedule->next_after(Instant{});
    if (!when || to_ms(*when) < t.created_at_ms - options_.misfire_grace_ms) {
      return bad_field("schedule_expr", fmt::format("the time \"{}\" of this once task is in the past", t.schedule_expr));
    }
    t.next_due_ms = to_ms(*when);
  } else if (auto next = first_after(*schedule, to_instant(t.created_at_ms))) {
    t.next_due_ms = to_ms(*next);
  }
  if (auto r = store_->insert_task(t); !r) return r.error();
  Json body = task_json(t);
  emit("task.created", json::copy(body));
  wake();
  return body;
}

Result<Json> Service::get_task(std::string_view id) {
  auto t = load_task(id);
  if (!t) return t.error();
  return task_json(*t);
}

Result<Json> Service::list_tasks(const JsonValue& input) {
  TaskQuery q;
  if (input.IsObject()) {
    if (auto it = input.FindMember("limit"); it != input.MemberEnd() && it->value.IsUint()) q.limit = it->value.GetUint();
    if (auto it = input.FindMember("cursor"); it != input.MemberEnd() && it->value.IsString()) {
      q.cursor = it->value.GetString();
    }
    if (auto it = input.FindMember("enabled"); it != input.MemberEnd() && it->value.IsBool()) {
      q.enabled = it->value.GetBool();
    }
  }
  auto page = store_->list_tasks(q);
  if (!page) return page.error();
  return page_json("tasks", page->tasks, task_json, page->next_cursor);
}

Result<Json> Service::update_task(const JsonValue& input) {
  auto id = input.IsObject() ? json::get_string(input, "id") : std::nullopt;
  if (!id) return bad_field("id", "id is required");
  std::optional<std::int64_t> expected;
  if (auto it = input.FindMember("revision"); it != input.MemberEnd()) {
    if (!it->value.IsInt64()) return bad_field("revision", "revision must be an integer");
    expected = it->value.GetInt64();
  }
  // Read, change, write if nobody changed it meanwhile; without a revision
  // from the caller, a concurrent change is merged by trying again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto current = load_task(*id);
    if (!current) return current.error();
    if (expected && *expected != current->revision) {
      Error e = make_error("conflict", fmt::format("task \"{}\" is at revision {}, not {}", *id, current->revision, *expected));
      e.pointer = "/revision";
      return e;
    }
    TaskRecord t = *current;
    if (auto r = apply_fields(t, input); !r) return r.error();
    auto schedule = validate_task(t, tools_, [this](const TaskRecord& task) { return schedule_of(task); });
    if (!schedule) return schedule.error();
    const bool timing_changed = t.schedule_kind != current->schedule_kind || t.schedule_expr != current->schedule_expr ||
                                t.timezone != current->timezone || (t.enabled && !current->enabled);
    const std::int64_t at = now();
    t.updated_at_ms = at;
    if (timing_changed) {
      t.next_due_ms.reset();
      if (auto next = first_after(*schedule, to_instant(at))) t.next_due_ms = to_ms(*next);
    }
    auto updated = store_->update_task(t, current->revision);
    if (!updated) return updated.error();
    if (!*updated) {
      if (expected) {
        Error e = make_error("conflict", fmt::format("task \"{}\" changed meanwhile", *id));
        e.pointer = "/revision";
        return e;
      }
      continue;
    }
    auto stored = load_task(*id);
    if (!stored) return stored.error();
    Json body = task_json(*stored);
    emit("task.updated", json::copy(body));
    wake();
    return body;
  }
  return make_error("conflict", fmt::format("task \"{}\" kept changing; try again", *id));
}

Result<Json> Service::set_enabled(std::string_view id, bool enabled) {
  Json input = json::object();
  set_string(input, "id", id);
  set_value(input, "enabled", JsonValue(enabled));
  return update_task(input);
}

Result<Json> Service::pause_task(std::string_view id) { return set_enabled(id, false); }
Result<Json> Service::resume_task(std::string_view id) { return set_enabled(id, true); }

Result<Json> Service::delete_task(std::string_view id) {
  auto deleted = store_->delete_task(id);
  if (!deleted) return deleted.error();
  if (!*deleted) {
    return not_found("task", id);
  }
  {
    std::lock_guard lock(schedules_mutex_);
    schedules_.erase(std::string(id));
  }
  {
    std::lock_guard lock(mutex_);
    for (auto& [run_id, active] : active_) {
      if (active->task_id == id) active->token.cancel();
    }
  }
  Json body = json::object();
  set_string(body, "id", id);
  set_value(body, "deleted", JsonValue(true));
  emit("task.deleted", json::copy(body));
  return body;
}

Result<Json> Service::run_now(const JsonValue& input) {
  auto id = input.IsObject() ? json::get_string(input, "id") : std::nullopt;
  if (!id) return bad_field("id", "id is required");
  auto task = load_task(*id);
  if (!task) return task.error();
  RunRecord run;
  run.id = new_id("run");
  run.task_id = task->id;
  run.trigger = "manual";
  run.status = "queued";
  run.scheduled_for_ms = now();
  run.dedupe_key = task->dedupe_key;
  run.concurrency_key = task->concurrency_key;
  if (auto it = input.FindMember("params"); it != input.MemberEnd()) {
    if (!it->value.IsObject()) return bad_field("params", "params must be an object");
    run.params = json::dump(it->value);
  }
  const std::int64_t window = task->dedupe_key.empty() ? 0 : task->dedupe_window_seconds * 1000;
  auto inserted = store_->insert_run(run, window);
  if (!inserted) return inserted.error();
  Json body = run_json(inserted->run);
  if (inserted->inserted) {
    emit("task.run.queued", json::copy(body));
    wake();
  }
  return body;
}

Result<Json> Service::snooze_task(const JsonValue& input) {
  auto id = input.IsObject() ? json::get_string(input, "id") : std::nullopt;
  if (!id) return bad_field("id", "id is required");
  std::int64_t skip = 0;
  std::optional<std::int64_t> until;
  if (auto it = input.FindMember("skip"); it != input.MemberEnd()) {
    if (!it->value.IsInt64() || it->value.GetInt64() < 1 || it->value.GetInt64() > 100'000) {
      return bad_field("skip", "skip must be an integer from 1 to 100000");
    }
    skip = it->value.GetInt64();
  }
  if (auto it = input.FindMember("until"); it != input.MemberEnd()) {
    if (!it->value.IsString()) return bad_field("until", "until must be an RFC 3339 time");
    auto when = Schedule::compile(ScheduleKind::once, it->value.GetString(), "UTC", Instant{});
    std::optional<Instant> at = when ? when->next_after(Instant{}) : std::nullopt;
    if (!at) {
      return bad_field("until", fmt::format("until \"{}\" is not an RFC 3339 time such as 2026-12-24T18:00:00Z",
                                            it->value.GetString()));
    }
    until = to_ms(*at);
  }
  if (skip == 0 && !until) return bad_field("skip", "give skip (occurrences to skip) or until (a time), or both");
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto current = load_task(*id);
    if (!current) return current.error();
    TaskRecord t = *current;
    t.skip_count += skip;
    if (until) t.snoozed_until_ms = until;
    t.updated_at_ms = now();
    auto updated = store_->update_task(t, current->revision);
    if (!updated) return updated.error();
    if (!*updated) continue;
    auto stored = load_task(*id);
    if (!stored) return stored.error();
    Json body = task_json(*stored);
    emit("task.updated", json::copy(body));
    return body;
  }
  return make_error("conflict", fmt::format("task \"{}\" kept changing; try again", *id));
}

Result<Json> Service::get_run(std::string_view id) {
  auto run = store_->get_run(id);
  if (!run) return run.error();
  if (!run->has_value()) {
    return not_found("run", id);
  }
  return run_json(**run);
}

Result<Json> Service::list_runs(const JsonValue& input) {
  RunQuery q;
  if (input.IsObject()) {
    if (auto v = json::get_string(input, "task_id")) q.task_id = std::string(*v);
    if (auto v = json::get_string(input, "status")) q.status = std::string(*v);
    if (auto v = json::get_string(input, "cursor")) q.cursor = std::string(*v);
    if (auto it = input.FindMember("limit"); it != input.MemberEnd() && it->value.IsUint()) q.limit = it->value.GetUint();
  }
  auto page = store_->list_runs(q);
  if (!page) return page.error();
  return page_json("runs", page->runs, run_json, page->next_cursor);
}

Result<Json> Service::cancel_run(std::string_view id) {
  auto stored = store_->get_run(id);
  if (!stored) return stored.error();
  if (!stored->has_value()) {
    return not_found("run", id);
  }
  RunRecord run = **stored;
  if (run.status == "queued") {
    // The store finishes a queued run as cancelled at once.
    if (auto r = store_->request_cancel(id); !r) return r.error();
    auto after = store_->get_run(id);
    if (!after) return after.error();
    if (after->has_value()) {
      Json body = run_json(**after);
      if ((*after)->status == "cancelled") emit("task.run.cancelled", json::copy(body));
      return body;
    }
    return get_run(id);
  }
  if (run.status != "running") return run_json(run);  // finished already: nothing to cancel
  {
    std::lock_guard lock(mutex_);
    if (auto it = active_.find(id); it != active_.end()) {
      it->second->token.cancel();
    }
  }
  // Recorded in the store too: a run on another server sees it when that
  // server renews the lease, and a run this server is releasing stays cancelled.
  if (auto r = store_->request_cancel(id); !r) return r.error();
  Json body = run_json(run);
  set_value(body, "cancel_requested", JsonValue(true));
  return body;
}

std::size_t Service::on_event(std::string_view topic, std::string_view event_id, std::int64_t time_ms,
                              const JsonValue& payload) {
  std::size_t queued = 0;
  TaskQuery q;
  q.enabled = true;
  q.limit = 1000;
  // Event tasks are found in the store, so that tasks another server created
  // fire too. Paged; a store error drops this event for the remaining tasks.
  for (int pages = 0; pages < 1000; ++pages) {
    auto page = store_->list_tasks(q);
    if (!page) break;
    for (const auto& task : page->tasks) {
      if (task.schedule_kind != "event") continue;
      auto schedule = schedule_of(task);
      if (!schedule || !schedule->matches_topic(topic)) continue;
      RunRecord run;
      run.id = new_id("run");
      run.task_id = task.id;
      run.trigger = "event";
      run.status = "queued";
      run.scheduled_for_ms = time_ms;
      run.concurrency_key = task.concurrency_key;
      Json event = json::object();
      set_string(event, "id", event_id);
      set_string(event, "topic", topic);
      set_string(event, "time", format_rfc3339_ms(time_ms));
      set_value(event, "payload", JsonValue(payload, event.GetAllocator()));
      run.event = json::dump(event);
      // Every server sharing the store hears the event: the event id keeps
      // it to one run per task. A task's own dedupe key wins when set.
      std::int64_t window = kEventDedupeWindowMs;
      if (task.dedupe_key.empty()) {
        run.dedupe_key = fmt::format("event:{}:{}", event_id, task.id);
      } else {
        run.dedupe_key = task.dedupe_key;
        window = task.dedupe_window_seconds * 1000;
      }
      auto inserted = store_->insert_run(run, window);
      if (inserted && inserted->inserted) {
        ++queued;
        emit("task.run.queued", run_json(inserted->run));
      }
    }
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  if (queued > 0) wake();
  return queued;
}

std::vector<RunRecord> Service::plan(TaskRecord& task, std::int64_t now_ms) {
  std::vector<RunRecord> runs;
  if (!task.next_due_ms) return runs;
  auto schedule = schedule_of(task);
  if (!schedule) {  // cannot happen for a stored task; never spin on it
    task.next_due_ms.reset();
    return runs;
  }
  // Every occurrence from next_due to now: the latest is run (or skipped);
  // the ones before it were missed.
  std::int64_t latest = *task.next_due_ms;
  std::size_t missed = 0;
  const std::int64_t first_missed = latest;
  auto due_by_now = [&](Instant after) {
    auto n = schedule->next_after(after);
    return n && to_ms(*n) <= now_ms ? n : std::nullopt;
  };
  for (; missed < kMaxCatchUpScan; ++missed) {
    auto next = due_by_now(to_instant(latest));
    if (!next) break;
    latest = to_ms(*next);
  }
  const bool more_missed = missed == kMaxCatchUpScan && due_by_now(to_instant(latest));
  if (more_missed) {
    // Bisection over whole seconds: an occurrence is due by now after `lo`,
    // none after `hi`; so the first one after `lo` is the latest due by now.
    Instant lo = to_instant(latest);
    Instant hi = to_instant(now_ms);
    while (hi - lo > std::chrono::seconds(1)) {
      const Instant mid = lo + (hi - lo) / 2;
      if (due_by_now(mid)) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    latest = to_ms(*due_by_now(lo));
  }
  auto next = schedule->next_after(to_instant(now_ms));
  task.next_due_ms = next ? std::optional<std::int64_t>(to_ms(*next)) : std::nullopt;

  auto make_run = [&](std::int64_t at, std::string trigger, std::string status) {
    RunRecord run;
    run.id = new_id("run");
    run.task_id = task.id;
    run.scheduled_for_ms = at;
    run.trigger = std::move(trigger);
    run.status = std::move(status);
    run.dedupe_key = task.dedupe_key;
    run.concurrency_key = task.concurrency_key;
    return run;
  };
  auto skipped = [&](std::int64_t at, std::string trigger, const std::string& code, const std::string& why) {
    RunRecord run = make_run(at, std::move(trigger), "skipped");
    run.finished_at_ms = now_ms;
    run.error = json::dump(error_json(make_error(code, why)));
    return run;
  };

  const bool late = now_ms - latest > options_.misfire_grace_ms;
  if (missed > 0 || late) {
    const std::size_t count = missed + (late ? 1 : 0);
    const std::int64_t last_missed = late ? latest : first_missed;
    if (task.catch_up == "run_once" && late) {
      runs.push_back(make_run(latest, "catch_up", "running"));
      runs.back().error.clear();
    } else {
      runs.push_back(skipped(last_missed, "catch_up", "missed",
                             fmt::format("{}{} occurrence(s) from {} missed while no server ran them (catch_up {})",
                                         more_missed ? "more than " : "", count, format_rfc3339_ms(first_missed),
                                         task.catch_up)));
    }
    if (late) return runs;
  }
  // `latest` is on time.
  if (task.snoozed_until_ms && latest < *task.snoozed_until_ms) {
    runs.push_back(skipped(latest, "schedule", "snoozed", fmt::format("snoozed until {}", format_rfc3339_ms(*task.snoozed_until_ms))));
    return runs;
  }
  if (task.skip_count > 0) {
    --task.skip_count;
    runs.push_back(skipped(latest, "schedule", "snoozed",
                           fmt::format("snoozed: {} more occurrence(s) to skip", task.skip_count)));
    return runs;
  }
  runs.push_back(make_run(latest, "schedule", "running"));
  return runs;
}

void Service::start_run(RunRecord run) {
  auto active = std::make_shared<Active>();
  active->task_id = run.task_id;
  active->lease_expires_ms = run.lease_expires_ms.value_or(now() + options_.lease_ms);
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return;  // its lease expires; another server (or the next start) takes it
    active_.emplace(run.id, active);
    queue_.emplace_back(std::move(run), std::move(active));
    if (workers_.size() < options_.workers) workers_.emplace_back([this] { work(); });
  }
  work_cv_.notify_one();
}

void Service::work() {
  for (;;) {
    std::unique_lock lock(mutex_);
    work_cv_.wait(lock, [&] { return shutting_down_ || !queue_.empty(); });
    if (shutting_down_) return;  // queued runs stay leased until it expires
    auto [run, active] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const std::string id = run.id;
    execute(std::move(run), active);
    lock.lock();
    active_.erase(id);
    lock.unlock();
    wake();
  }
}

void Service::execute(RunRecord run, std::shared_ptr<Active> active) {
  auto finish = [&](std::string status, std::optional<Error> error, std::string_view step = {}) {
    run.status = std::move(status);
    run.finished_at_ms = now();
    run.error = error ? json::dump(error_json(*error, step)) : std::string();
    auto updated = store_->update_run(run, options_.owner);
    if (!updated || !*updated) return;  // lease lost: the run is someone else's now
    emit("task.run." + run.status, run_json(run));
  };
  auto task = load_task(run.task_id);
  if (!task) {
    finish("cancelled", make_error("task_deleted", fmt::format("task \"{}\" no longer exists", run.task_id)));
    return;
  }
  auto payload = json::parse(task->payload);
  if (!payload) {
    finish("failed", payload.error());
    return;
  }
  static const JsonValue empty_array(rapidjson::kArrayType);
  const JsonValue* steps_json = &empty_array;
  if (auto it = payload->FindMember("pipeline"); it != payload->MemberEnd()) steps_json = &it->value;
  auto pipeline = parse_pipeline(*steps_json, "/payload/pipeline");
  if (!pipeline) {
    finish("failed", pipeline.error());
    return;
  }
  Json params(rapidjson::kObjectType);
  if (auto it = payload->FindMember("params"); it != payload->MemberEnd() && it->value.IsObject()) {
    params.CopyFrom(it->value, params.GetAllocator());
  }
  if (!run.params.empty()) {  // run_now's overrides, shallow
    if (auto overrides = json::parse(run.params); overrides && overrides->IsObject()) {
      for (auto& m : overrides->GetObject()) {
        params.RemoveMember(m.name);
        params.AddMember(JsonValue(m.name, params.GetAllocator()), JsonValue(m.value, params.GetAllocator()),
                         params.GetAllocator());
      }
    }
  }
  std::optional<Json> event;
  if (!run.event.empty()) {
    if (auto e = json::parse(run.event)) event = std::move(*e);
  }
  auto backoff = Backoff::parse(task->backoff_strategy);
  if (!backoff) {
    finish("failed", backoff.error());
    return;
  }

  run.status = "running";
  run.started_at_ms = now();
  if (auto updated = store_->update_run(run, options_.owner); !updated || !*updated) return;
  emit("task.run.started", run_json(run));

  Json steps(rapidjson::kArrayType);
  StepObserver observer;
  observer.finished = [&](const StepResult& step) {
    steps.PushBack(JsonValue(to_json(step), steps.GetAllocator()), steps.GetAllocator());
    run.steps = json::dump(steps);
    if (auto updated = store_->update_run(run, options_.owner); updated && *updated) {
      emit("task.run.step", run_json(run));
    }
  };
  RunOptions opts;
  opts.max_retries = task->max_retries;
  opts.backoff = *backoff;
  opts.now_ms = options_.now_ms;
  RunResult result = run_pipeline(*pipeline, params, event ? &*event : nullptr, tools_, opts, active->token, observer);
  run.steps = json::dump(steps_to_json(result));
  if (active->lease_lost) return;
  const std::string_view status = to_string(result.status);
  if (status == "cancelled" && active->released) {
    auto asked = store_->cancel_requested(run.id);
    if (asked && !*asked) {
      // Back to the queue, from its first step: a run is at least once.
      run.status = "queued";
      run.started_at_ms.reset();
      run.finished_at_ms.reset();
      run.lease_expires_ms = now();
      run.steps = "[]";
      run.error.clear();
      (void)store_->update_run(run, options_.owner);
      return;
    }
  }
  if (status == "succeeded") {
    finish("succeeded", std::nullopt);
  } else if (status == "cancelled") {
    finish("cancelled", result.error ? result.error : std::optional<Error>(make_error("cancelled", "the run was cancelled")),
           result.failed_step);
  } else {
    finish("failed", result.error, result.failed_step);
  }
}

void Service::renew_leases(std::int64_t now_ms) {
  std::vector<std::pair<std::string, std::shared_ptr<Active>>> running;
  {
    std::lock_guard lock(mutex_);
    running.assign(active_.begin(), active_.end());
  }
  for (auto& [id, active] : running) {
    if (now_ms + options_.lease_ms / 2 >= active->lease_expires_ms) {
      auto renewed = store_->renew_lease(id, options_.owner, now_ms + options_.lease_ms);
      if (renewed && *renewed) {
        active->lease_expires_ms = now_ms + options_.lease_ms;
      } else if (renewed) {  // another server took it over
        active->lease_lost = true;
        active->token.cancel();
      }
    }
    if (auto asked = store_->cancel_requested(id); asked && *asked) active->token.cancel();
  }
}

std::size_t Service::tick(std::int64_t now_ms) {
  renew_leases(now_ms);
  std::size_t free_slots = 0;
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return 0;
    free_slots = options_.workers > active_.size() ? options_.workers - active_.size() : 0;
  }
  std::size_t started = 0;
  std::vector<RunRecord> skipped;
  if (free_slots > 0) {
    auto due = store_->claim_due(now_ms, options_.owner, options_.lease_ms, std::min(free_slots, options_.claim_batch),
                                 [&](TaskRecord& task, std::int64_t at) {
                                   auto runs = plan(task, at);
                                   for (const auto& r : runs) {
                                     if (r.status == "skipped") skipped.push_back(r);
                                   }
                                   return runs;
                                 });
    if (due) {
      for (auto& run : *due) {
        start_run(std::move(run));
        ++started;
      }
    }
  }
  for (const auto& r : skipped) emit("task.run.skipped", run_json(r));
  if (started < free_slots) {
    auto runs = store_->claim_runs(now_ms, options_.owner, options_.lease_ms,
                                   std::min(free_slots - started, options_.claim_batch));
    if (runs) {
      for (auto& run : *runs) {
        start_run(std::move(run));
        ++started;
      }
    }
  }
  if (now_ms - last_prune_ms_ > 3'600'000) {
    last_prune_ms_ = now_ms;
    (void)store_->prune_runs(now_ms - options_.retention_ms, options_.retention_count);
  }
  return started;
}

// How long the dispatcher may sleep after a round at `ticked_at_ms` that
// started `started` runs. Times at or before the round are not waited for:
// what was due then and is still there could not be claimed (no free worker,
// a concurrency key, a store error), and a worker finishing or the poll
// brings it back; waiting for them would spin.
std::chrono::milliseconds Service::idle_wait(std::int64_t ticked_at_ms, std::size_t started) {
  std::chrono::milliseconds wait = options_.poll_interval;
  if (!options_.wake_at_due) return wait;
  if (started >= options_.claim_batch) return std::chrono::milliseconds(0);  // more may be due: go on
  std::optional<std::int64_t> at;
  auto consider = [&](std::int64_t ms) {
    if (ms > ticked_at_ms && (!at || ms < *at)) at = ms;
  };
  {
    std::lock_guard lock(mutex_);
    // renew_leases renews a lease once half of it is left.
    for (const auto& [id, active] : active_) consider(active->lease_expires_ms - options_.lease_ms / 2);
  }
  if (auto due = store_->next_wake_ms(); due && *due) consider(**due);
  if (at) wait = std::min(wait, std::chrono::milliseconds(std::max<std::int64_t>(*at - now(), 0)));
  return wait;
}

void Service::run(std::stop_token stop) {
  std::stop_callback on_stop(stop, [this] { wake(); });
  while (!stop.stop_requested()) {
    const std::int64_t ticked_at = now();
    const std::size_t started = tick(ticked_at);
    const std::chrono::milliseconds wait = idle_wait(ticked_at, started);
    std::unique_lock lock(mutex_);
    wake_cv_.wait_for(lock, wait, [&] { return woken_ || stop.stop_requested(); });
    woken_ = false;
  }
  shutdown();
}

void Service::shutdown() {
  std::vector<std::jthread> workers;
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    for (auto& [id, active] : active_) {
      active->released = true;
      active->token.cancel();
    }
    queue_.clear();
    workers.swap(workers_);
  }
  work_cv_.notify_all();
  workers.clear();  // joins: each run ends soon after its cancellation
}

}  // namespace ordinaut::scheduler
