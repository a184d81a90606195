// scheduler: tasks on cron, RRULE, one-off and event schedules whose runs are
// pipelines of real tool calls, kept in SQLite or PostgreSQL (docs/scheduler.md).
//
// Tools (declared in extension.json; their definitions are taken from the
// declaration, so the two cannot differ): ext.scheduler.create_task,
// list_tasks, get_task, update_task, delete_task, pause_task, resume_task,
// run_now, snooze_task, cancel_run, list_runs, get_run.
//
// REST, under /ext/scheduler/api, the same operations:
//   POST   /tasks                 create_task (body: the tool's input)
//   GET    /tasks                 list_tasks  (?enabled=true|false&limit=&cursor=)
//   GET    /tasks/{id}            get_task
//   PATCH  /tasks/{id}            update_task (body: fields to change, optional revision)
//   DELETE /tasks/{id}            delete_task
//   POST   /tasks/{id}/pause      pause_task
//   POST   /tasks/{id}/resume     resume_task
//   POST   /tasks/{id}/run        run_now     (body optional: {"params": {...}})
//   POST   /tasks/{id}/snooze     snooze_task (body: {"skip": N} and/or {"until": time})
//   GET    /runs                  list_runs   (?task_id=&status=&limit=&cursor=)
//   GET    /runs/{id}             get_run
//   POST   /runs/{id}/cancel      cancel_run
//   GET    /runs/stream           Server-Sent Events of task and run changes
//                                 (?task_id= to follow one task)
// Errors: 400 invalid input (details.pointer names the field), 404 unknown
// id, 409 revision conflict, 503 the store is unavailable.
//
// Events published (source "scheduler"): task.created, task.updated,
// task.deleted, task.run.started, task.run.succeeded, task.run.failed, plus
// task.run.cancelled and task.run.skipped. Event tasks fire on any topic
// their pattern matches, except the scheduler's own events (a task firing on
// its own runs would loop).
//
// Settings (environment; the reference server's --data-dir and
// --scheduler-store set the first two):
//   ORDINAUT_DATA_DIR                 folder of the SQLite store (default ./ordinaut-data)
//   ORDINAUT_SCHEDULER_STORE          sqlite:PATH or postgresql://... (default sqlite:DATA_DIR/scheduler.db)
//   ORDINAUT_SCHEDULER_WORKERS        runs at once on this server (default 4)
//   ORDINAUT_SCHEDULER_LEASE_SECONDS  lease of a claimed run (default 30)
//   ORDINAUT_SCHEDULER_RETENTION_DAYS finished runs kept at most this long (default 30)
//   ORDINAUT_SCHEDULER_RETENTION_RUNS and at most this many per task (default 1000)
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <list>
#include <mutex>
#include <random>

#include <fmt/format.h>
#include <ordinaut/extension.hpp>

#include "service.hpp"

namespace {

using ordinaut::Capability;
using ordinaut::Json;
using ordinaut::JsonValue;
using ordinaut::Request;
using ordinaut::Response;
using ordinaut::scheduler::Change;
using ordinaut::scheduler::Service;

constexpr std::size_t kMaxStreams = 64;
constexpr std::size_t kStreamQueue = 1024;

std::int64_t setting(const char* name, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v, &end, 10);
  if (*end != '\0' || errno != 0 || n < lo || n > hi) {
    throw std::invalid_argument(fmt::format("{}=\"{}\" must be a whole number from {} to {}", name, v, lo, hi));
  }
  return n;
}

std::string store_spec() {
  if (const char* s = std::getenv("ORDINAUT_SCHEDULER_STORE"); s != nullptr && *s != '\0') return s;
  const char* d = std::getenv("ORDINAUT_DATA_DIR");
  const std::filesystem::path dir = (d != nullptr && *d != '\0') ? d : "ordinaut-data";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create the data folder {}: {}", dir.string(), ec.message()));
  return "sqlite:" + (dir / "scheduler.db").string();
}

// The store spec as it may be shown (logs, /ext/status): a password in a
// postgresql://user:password@host/db URL becomes "***". Only the URL's
// userinfo is touched; a "password=" in its query string is redacted too.
std::string redacted(std::string spec) {
  if (const auto scheme = spec.find("://"); scheme != std::string::npos) {
    const auto authority = scheme + 3;
    const auto end = spec.find_first_of("/?#", authority);
    const auto at = spec.rfind('@', end == std::string::npos ? spec.size() : end);
    if (at != std::string::npos && at > authority) {
      if (const auto colon = spec.find(':', authority); colon != std::string::npos && colon < at) {
        spec.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  for (std::size_t at = spec.find("password="); at != std::string::npos; at = spec.find("password=", at + 1)) {
    const auto value = at + 9;
    const auto end = spec.find('&', value);
    spec.replace(value, (end == std::string::npos ? spec.size() : end) - value, "***");
  }
  return spec;
}

int http_status(const ordinaut::Error& e) {
  if (e.code == "not_found") return 404;
  if (e.code == "conflict") return 409;
  if (e.code == "store_unavailable" || e.code == "store_error" || e.code == "unavailable") return 503;
  return 400;
}

const char* http_code(int status) {
  return status == 404 ? "not_found" : status == 409 ? "conflict" : status == 503 ? "unavailable" : "bad_request";
}

Response error_response(const ordinaut::Error& e) {
  const int status = http_status(e);
  return Response::error(status, http_code(status), e);
}

Response to_response(ordinaut::Result<Json> r, int status = 200) {
  if (!r) return error_response(r.error());
  return Response::json(status, *r);
}

// One open /runs/stream.
struct Stream {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::string> queue;  // formatted SSE events
  std::string task_id;            // filter, empty: everything
  std::uint64_t dropped = 0;
};

class Scheduler final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"scheduler", "Scheduler", "0.1.0",
            "Tasks on cron, RRULE, one-off and event schedules, running pipelines of real tool calls"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {Capability::ROUTES, Capability::TOOLS, Capability::EVENTS_PUB, Capability::EVENTS_SUB,
            Capability::BACKGROUND_TASKS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    const std::string spec = store_spec();
    auto store = ordinaut::scheduler::Store::open(spec);
    if (!store) throw std::runtime_error(fmt::format("scheduler store {}: {}", redacted(spec), store.error().message));
    ordinaut::scheduler::ServiceOptions options;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    options.owner = fmt::format("{}:{}:{:08x}", host, getpid(), static_cast<std::uint32_t>(std::random_device{}()));
    options.workers = static_cast<std::size_t>(setting("ORDINAUT_SCHEDULER_WORKERS", 4, 1, 256));
    options.lease_ms = setting("ORDINAUT_SCHEDULER_LEASE_SECONDS", 30, 2, 86400) * 1000;
    options.retention_ms = setting("ORDINAUT_SCHEDULER_RETENTION_DAYS", 30, 1, 36500) * 24 * 3600 * 1000;
    options.retention_count = static_cast<std::size_t>(setting("ORDINAUT_SCHEDULER_RETENTION_RUNS", 1000, 1, 10'000'000));
    service_ = std::make_unique<Service>(std::move(*store), context.tools(), std::move(options));

    if (context.granted(Capability::EVENTS_PUB)) publisher_ = &context.events_publisher();
    service_->on_change([this](const Change& c) { changed(c); });
    if (context.granted(Capability::EVENTS_SUB)) {
      auto sub = context.events_subscriber().subscribe("*", [this](const ordinaut::Event& e) {
        if (e.source == "scheduler" || !e.payload) return;  // never our own: a task firing on its runs would loop
        service_->on_event(e.topic, e.id, e.time_ms, *e.payload);
      });
      if (!sub) throw std::runtime_error("cannot subscribe to events: " + sub.error().message);
      subscription_ = *sub;
    }
    if (context.granted(Capability::BACKGROUND_TASKS)) {
      auto started = context.background().start("dispatcher", [this](std::stop_token stop) { service_->run(stop); });
      if (!started) throw std::runtime_error("cannot start the dispatcher: " + started.error().message);
    }
    if (context.granted(Capability::TOOLS)) register_tools(context);
    return routes();
  }

  void on_shutdown() override {
    subscription_.cancel();
    stopping_.store(true);
    {
      std::lock_guard lock(streams_mutex_);
      for (auto& s : streams_) {
        { std::lock_guard state_lock(s->mutex); }
        s->ready.notify_all();
      }
    }
    if (service_) service_->shutdown();
  }

  ordinaut::Json health_checks() const override {
    Json doc = ordinaut::json::object();
    auto& a = doc.GetAllocator();
    JsonValue s(rapidjson::kObjectType);
    s.AddMember("status", "ok", a);
    if (service_) {
      s.AddMember("backend", JsonValue(std::string(service_->store().backend()).c_str(), a), a);
      s.AddMember("schema_version", service_->store().schema_version(), a);
      s.AddMember("active_runs", static_cast<std::uint64_t>(service_->active_runs()), a);
    }
    doc.AddMember("store", s, a);
    return doc;
  }

 private:
  using Op = std::function<ordinaut::Result<Json>(const JsonValue&)>;

  // The twelve operations by tool name (without the ext.scheduler. prefix).
  std::vector<std::pair<std::string, Op>> operations() {
    auto by_id = [this](auto method) {
      return [this, method](const JsonValue& in) -> ordinaut::Result<Json> {
        auto id = ordinaut::json::get_string(in, "id");
        if (!id) return ordinaut::make_error("invalid_arguments", "id is required");
        return ((*service_).*method)(*id);
      };
    };
    auto with_input = [this](auto method) {
      return [this, method](const JsonValue& in) { return ((*service_).*method)(in); };
    };
    return {{"create_task", with_input(&Service::create_task)}, {"list_tasks", with_input(&Service::list_tasks)},
            {"get_task", by_id(&Service::get_task)},            {"update_task", with_input(&Service::update_task)},
            {"delete_task", by_id(&Service::delete_task)},      {"pause_task", by_id(&Service::pause_task)},
            {"resume_task", by_id(&Service::resume_task)},      {"run_now", with_input(&Service::run_now)},
            {"snooze_task", with_input(&Service::snooze_task)}, {"cancel_run", by_id(&Service::cancel_run)},
            {"list_runs", with_input(&Service::list_runs)},     {"get_run", by_id(&Service::get_run)}};
  }

  // The tools as extension.json declares them (read from the file: asking
  // the registry for a declared tool would load this very extension).
  void register_tools(ordinaut::SetupContext& context) {
    const auto file = context.extension_dir() / "extension.json";
    std::ifstream in(file, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto manifest = ordinaut::json::parse(text);
    if (!manifest) throw std::runtime_error(fmt::format("{}: {}", file.string(), manifest.error().message));
    std::map<std::string, const JsonValue*, std::less<>> declared;
    if (auto c = manifest->FindMember("contributes"); c != manifest->MemberEnd() && c->value.IsObject()) {
      if (auto t = c->value.FindMember("tools"); t != c->value.MemberEnd() && t->value.IsArray()) {
        for (const auto& tool : t->value.GetArray()) {
          if (auto name = ordinaut::json::get_string(tool, "name")) declared.emplace(std::string(*name), &tool);
        }
      }
    }
    auto& registrar = context.tool_registrar();
    for (auto& [name, op] : operations()) {
      auto it = declared.find(name);
      if (it == declared.end()) throw std::logic_error(fmt::format("{} does not declare tool {}", file.string(), name));
      const JsonValue& d = *it->second;
      auto member = [&](const char* key) {
        auto m = d.FindMember(key);
        return m == d.MemberEnd() ? std::string() : ordinaut::json::dump(m->value);
      };
      ordinaut::ToolSpec spec;
      spec.name = registrar.prefix() + name;
      spec.title = std::string(ordinaut::json::get_string(d, "title").value_or(""));
      spec.description = std::string(ordinaut::json::get_string(d, "description").value_or(""));
      spec.input_schema = member("inputSchema");
      spec.output_schema = member("outputSchema");
      spec.annotations = member("annotations");
      input_schemas_.emplace(name, spec.input_schema);
      spec.function = [op = op](const JsonValue& input, ordinaut::ToolContext&) -> Json {
        auto r = op(input);
        if (!r) {
          const auto& e = r.error();
          // The HTTP class of the error as the code (REST callers of the
          // tool get the same status as the scheduler's own routes), the
          // scheduler's code and the pointer in the details.
          throw ordinaut::ToolError(
              http_code(http_status(e)),
              e.pointer.empty() ? e.message : fmt::format("{} (at {})", e.message, e.pointer),
              e.pointer.empty() ? fmt::format(R"({{"code":"{}"}})", ordinaut::json::escape(e.code))
                                : fmt::format(R"({{"code":"{}","pointer":"{}"}})", ordinaut::json::escape(e.code),
                                              ordinaut::json::escape(e.pointer)));
        }
        return std::move(r).value();
      };
      registrar.add(std::move(spec));
    }
  }

  // A route's JSON body, or {} when empty (the route's schema checked it).
  static ordinaut::Result<Json> body_of(Request& r) {
    if (r.body.find_first_not_of(" \t\r\n") == std::string::npos) return ordinaut::json::object();
    auto body = r.json();
    if (!body) return body.error();
    return ordinaut::json::copy(*body);
  }

  // The id of the path as the "id" member of `input` (an object).
  static void put_id(Json& input, std::string_view id) {
    input.RemoveMember("id");
    input.AddMember("id", JsonValue(id.data(), static_cast<rapidjson::SizeType>(id.size()), input.GetAllocator()),
                    input.GetAllocator());
  }

  // A query string turned into the tool input of list_tasks / list_runs.
  static ordinaut::Result<Json> query_input(Request& r, std::initializer_list<const char*> strings, bool enabled) {
    Json in = ordinaut::json::object();
    auto& a = in.GetAllocator();
    for (const char* key : strings) {
      if (auto v = r.query(key)) in.AddMember(JsonValue(key, a), JsonValue(v->c_str(), a), a);
    }
    if (auto v = r.query("limit")) {
      char* end = nullptr;
      const long n = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || n < 1 || n > 1000) {
        ordinaut::Error e = ordinaut::make_error("invalid_arguments", fmt::format("limit \"{}\" must be 1 to 1000", *v));
        e.pointer = "/limit";
        return e;
      }
      in.AddMember("limit", static_cast<int>(n), a);
    }
    if (enabled) {
      if (auto v = r.query("enabled")) {
        if (*v != "true" && *v != "false") {
          ordinaut::Error e = ordinaut::make_error("invalid_arguments", fmt::format("enabled \"{}\" must be true or false", *v));
          e.pointer = "/enabled";
          return e;
        }
        in.AddMember("enabled", *v == "true", a);
      }
    }
    return in;
  }

  ordinaut::Router routes() {
    ordinaut::Router router;
    auto schema = [this](const char* tool) {
      auto it = input_schemas_.find(tool);
      return it == input_schemas_.end() ? std::string() : it->second;
    };
    router.post("/api/tasks", [this](Request& r) {
      auto body = body_of(r);
      if (!body) return error_response(body.error());
      return to_response(service_->create_task(*body), 201);
    }, {.summary = "Create a task (create_task)", .request_schema = schema("create_task"), .response_schema = {}});
    router.get("/api/tasks", [this](Request& r) {
      auto in = query_input(r, {"cursor"}, true);
      if (!in) return error_response(in.error());
      return to_response(service_->list_tasks(*in));
    }, {.summary = "List tasks (list_tasks): ?enabled=&limit=&cursor=", .request_schema = {}, .response_schema = {}});
    router.get("/api/tasks/{id}", [this](Request& r) { return to_response(service_->get_task(r.param("id"))); },
               {.summary = "One task (get_task)", .request_schema = {}, .response_schema = {}});
    router.patch("/api/tasks/{id}", [this](Request& r) {
      auto body = body_of(r);
      if (!body) return error_response(body.error());
      if (!body->IsObject()) return error_response(ordinaut::make_error("invalid_arguments", "the body must be an object"));
      put_id(*body, r.param("id"));
      return to_response(service_->update_task(*body));
    }, {.summary = "Change fields of a task (update_task)", .request_schema = {}, .response_schema = {}});
    router.del("/api/tasks/{id}", [this](Request& r) { return to_response(service_->delete_task(r.param("id"))); },
               {.summary = "Delete a task and its runs (delete_task)", .request_schema = {}, .response_schema = {}});
    router.post("/api/tasks/{id}/pause", [this](Request& r) { return to_response(service_->pause_task(r.param("id"))); },
                {.summary = "Pause a task (pause_task)", .request_schema = {}, .response_schema = {}});
    router.post("/api/tasks/{id}/resume", [this](Request& r) { return to_response(service_->resume_task(r.param("id"))); },
                {.summary = "Resume a task (resume_task)", .request_schema = {}, .response_schema = {}});
    router.post("/api/tasks/{id}/run", [this](Request& r) {
      auto body = body_of(r);
      if (!body) return error_response(body.error());
      if (!body->IsObject()) return error_response(ordinaut::make_error("invalid_arguments", "the body must be an object"));
      put_id(*body, r.param("id"));
      return to_response(service_->run_now(*body), 202);
    }, {.summary = "Queue a run now (run_now); body optional {\"params\":{...}}", .request_schema = {}, .response_schema = {}});
    router.post("/api/tasks/{id}/snooze", [this](Request& r) {
      auto body = body_of(r);
      if (!body) return error_response(body.error());
      if (!body->IsObject()) return error_response(ordinaut::make_error("invalid_arguments", "the body must be an object"));
      put_id(*body, r.param("id"));
      return to_response(service_->snooze_task(*body));
    }, {.summary = "Skip the next N occurrences or until a time (snooze_task)", .request_schema = {}, .response_schema = {}});
    router.get("/api/runs", [this](Request& r) {
      auto in = query_input(r, {"task_id", "status", "cursor"}, false);
      if (!in) return error_response(in.error());
      return to_response(service_->list_runs(*in));
    }, {.summary = "List runs, newest first (list_runs): ?task_id=&status=&limit=&cursor=", .request_schema = {},
        .response_schema = {}});
    router.get("/api/runs/stream", [this](Request& r) { return stream(r); },
               {.summary = "Server-Sent Events of task and run changes (?task_id=)", .request_schema = {},
                .response_schema = {}});
    router.get("/api/runs/{id}", [this](Request& r) { return to_response(service_->get_run(r.param("id"))); },
               {.summary = "One run with its steps (get_run)", .request_schema = {}, .response_schema = {}});
    router.post("/api/runs/{id}/cancel", [this](Request& r) { return to_response(service_->cancel_run(r.param("id"))); },
                {.summary = "Cancel a queued or running run (cancel_run)", .request_schema = {}, .response_schema = {}});
    return router;
  }

  void changed(const Change& c) {
    if (publisher_ != nullptr && c.topic != "task.run.step" && c.topic != "task.run.queued") {
      (void)publisher_->publish(c.topic, c.body);  // best effort: the store has the truth
    }
    const std::string data = ordinaut::json::dump(c.body);
    std::string task_id;
    if (auto t = ordinaut::json::get_string(c.body, "task_id")) {
      task_id = *t;
    } else if (auto i = ordinaut::json::get_string(c.body, "id")) {
      task_id = *i;
    }
    const std::string event = ordinaut::format_sse_event(data, c.topic, std::to_string(++sequence_));
    std::lock_guard lock(streams_mutex_);
    for (auto& s : streams_) {
      if (!s->task_id.empty() && s->task_id != task_id) continue;
      {
        std::lock_guard state_lock(s->mutex);
        if (s->queue.size() >= kStreamQueue) {
          ++s->dropped;
          continue;
        }
        s->queue.push_back(event);
      }
      s->ready.notify_one();
    }
  }

  Response stream(Request& r) {
    auto state = std::make_shared<Stream>();
    if (auto t = r.query("task_id")) state->task_id = *t;
    {
      std::lock_guard lock(streams_mutex_);
      if (streams_.size() >= kMaxStreams) {
        return Response::error(503, "unavailable", fmt::format("{} run streams are open, the most allowed", kMaxStreams));
      }
      streams_.push_back(state);
    }
    return Response::event_stream([this, state](ordinaut::StreamSink& sink) {
      run_stream(sink, *state);
      std::lock_guard lock(streams_mutex_);
      streams_.remove(state);
    });
  }

  void run_stream(ordinaut::StreamSink& sink, Stream& s) {
    if (!sink.write("retry: 2000\n: scheduler run changes\n\n")) return;
    while (!stopping_.load() && sink.is_open()) {
      std::deque<std::string> batch;
      std::uint64_t dropped = 0;
      {
        std::unique_lock lock(s.mutex);
        s.ready.wait_for(lock, std::chrono::seconds(5), [&] { return !s.queue.empty() || stopping_.load(); });
        batch.swap(s.queue);
        dropped = std::exchange(s.dropped, 0);
      }
      if (dropped > 0 && !sink.write(fmt::format(": {} changes dropped (slow client)\n\n", dropped))) return;
      for (const auto& e : batch) {
        if (!sink.write(e)) return;
      }
      if (batch.empty() && !sink.write(": heartbeat\n\n")) return;
    }
  }

  std::unique_ptr<Service> service_;
  const ordinaut::EventPublisher* publisher_ = nullptr;
  ordinaut::Subscription subscription_;
  std::map<std::string, std::string> input_schemas_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> sequence_{0};
  std::mutex streams_mutex_;
  std::list<std::shared_ptr<Stream>> streams_;
};

}  // namespace

ORDINAUT_EXTENSION(Scheduler)
