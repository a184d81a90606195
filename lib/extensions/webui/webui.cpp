// webui: task management in the browser.
//
// A task is a small pipeline: a title and a list of steps, each a tool from the
// registry with its arguments. Running a task calls the steps in order through
// the registry (so inputs are schema-checked like any other call) and records
// the run. With EVENTS_PUB the runs are published as task.started /
// task.succeeded / task.failed, which observability turns into task execution
// statistics. The page in static/ shows tasks, runs, extensions and live
// system status (from /ext/status).
//
// Storage is in memory and bounded (kMaxTasks, kMaxRuns); a host that needs
// persistence provides its own task store extension.
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <ordinaut/extension.hpp>

namespace {

using ordinaut::Json;
using ordinaut::JsonValue;
using ordinaut::Request;
using ordinaut::Response;
namespace json = ordinaut::json;

constexpr std::size_t kMaxTasks = 10'000;
constexpr std::size_t kMaxRuns = 1'000;

constexpr const char* kTaskSchema = R"({
  "type": "object",
  "required": ["title"],
  "properties": {
    "title": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": {"type": "string", "maxLength": 2000},
    "steps": {
      "type": "array",
      "maxItems": 50,
      "items": {
        "type": "object",
        "required": ["tool"],
        "properties": {
          "tool": {"type": "string", "minLength": 1, "maxLength": 128},
          "arguments": {"type": "object"}
        },
        "additionalProperties": false
      }
    }
  },
  "additionalProperties": false
})";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Task {
  std::string id;
  Json doc;  // title, description, steps, as submitted (validated)
  std::int64_t created_ms = 0;
  std::uint64_t runs = 0;
  std::string last_status;  // "", "succeeded", "failed"
};

class WebUi final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"webui", "Web UI", "0.1.0",
            "Task management, pipeline runs, system status and extension management in the browser"};
  }

  ordinaut::CapabilitySet requested_capabilities() const override {
    using C = ordinaut::Capability;
    return {C::ROUTES, C::STATIC, C::EVENTS_PUB};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& ctx) override {
    tools_ = &ctx.tools();
    if (ctx.granted(ordinaut::Capability::EVENTS_PUB)) publisher_ = &ctx.events_publisher();
    ordinaut::Router router;
    router.get("/api/tasks", [this](Request&) { return list_tasks(); }, {.summary = "List tasks"});
    router.post("/api/tasks", [this](Request& r) { return create_task(r); },
                {.summary = "Create a task (a pipeline of tool steps)", .request_schema = kTaskSchema});
    router.get("/api/tasks/{id}", [this](Request& r) { return get_task(r.param("id")); }, {.summary = "One task"});
    router.del("/api/tasks/{id}", [this](Request& r) { return delete_task(r.param("id")); },
               {.summary = "Delete a task"});
    router.post("/api/tasks/{id}/run", [this](Request& r) { return run_task(r.param("id")); },
                {.summary = "Run a task now: its steps are called in order"});
    router.get("/api/runs", [this](Request&) { return list_runs(); }, {.summary = "Recent runs, newest first"});
    router.get("/api/tools", [this](Request&) { return list_tools(); }, {.summary = "Tools a step can call"});
    return router;
  }

 private:
  static JsonValue task_json(const Task& t, Json::AllocatorType& a) {
    JsonValue v(rapidjson::kObjectType);
    v.AddMember("id", JsonValue(t.id.c_str(), a), a);
    for (auto& m : t.doc.GetObject()) v.AddMember(JsonValue(m.name, a), JsonValue(m.value, a), a);
    if (!v.HasMember("steps")) v.AddMember("steps", JsonValue(rapidjson::kArrayType), a);
    v.AddMember("created_ms", t.created_ms, a);
    v.AddMember("runs", t.runs, a);
    v.AddMember("last_status", JsonValue(t.last_status.c_str(), a), a);
    return v;
  }

  Response list_tasks() {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    JsonValue list(rapidjson::kArrayType);
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, t] : tasks_) list.PushBack(task_json(t, a), a);
    }
    doc.AddMember("tasks", list, a);
    return Response::json(200, doc);
  }

  Response create_task(Request& request) {
    auto body = request.json();  // already schema-validated by the host
    if (!body) return Response::error(400, "bad_request", body.error().message);
    if (body->HasMember("steps")) {
      const auto& steps = (*body)["steps"];
      for (rapidjson::SizeType i = 0; i < steps.Size(); ++i) {
        std::string tool = steps[i]["tool"].GetString();
        if (!tools_->get(tool)) {
          return Response::error(400, "bad_request", fmt::format("/steps/{}/tool: no tool named {}", i, tool),
                                 fmt::format(R"({{"pointer":"/steps/{}/tool"}})", i));
        }
      }
    }
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    std::lock_guard lock(mutex_);
    if (tasks_.size() >= kMaxTasks) {
      return Response::error(429, "rate_limit_exceeded", fmt::format("at most {} tasks are kept", kMaxTasks));
    }
    Task task;
    task.id = fmt::format("t{}", ++next_task_);
    task.doc = std::move(body).value();
    task.created_ms = now_ms();
    doc.CopyFrom(task_json(task, a), a);
    tasks_.emplace(task.id, std::move(task));
    Response r = Response::json(201, doc);
    r.headers.set("Location", "/ext/webui/api/tasks/" + std::string(json::get_string(doc, "id").value()));
    return r;
  }

  Response get_task(std::string_view id) {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    std::lock_guard lock(mutex_);
    auto it = tasks_.find(std::string(id));
    if (it == tasks_.end()) return not_found(id);
    doc.CopyFrom(task_json(it->second, a), a);
    JsonValue runs(rapidjson::kArrayType);
    for (auto r = runs_.rbegin(); r != runs_.rend(); ++r) {
      if (json::get_string(*r, "task_id") == id) runs.PushBack(JsonValue(*r, a), a);
    }
    doc.AddMember("recent_runs", runs, a);
    return Response::json(200, doc);
  }

  Response delete_task(std::string_view id) {
    std::lock_guard lock(mutex_);
    if (tasks_.erase(std::string(id)) == 0) return not_found(id);
    Response r;
    r.status = 204;
    return r;
  }

  static Response not_found(std::string_view id) {
    return Response::error(404, "not_found", fmt::format("no task {}", json::escape(id)),
                           fmt::format(R"({{"task_id":"{}"}})", json::escape(id)));
  }

  void publish(const char* topic, const std::string& payload_text) {
    if (publisher_ == nullptr) return;
    auto payload = json::parse(payload_text);
    if (payload) (void)publisher_->publish(topic, *payload);
  }

  Response run_task(std::string_view id) {
    Json steps;
    std::string run_id;
    {
      std::lock_guard lock(mutex_);
      auto it = tasks_.find(std::string(id));
      if (it == tasks_.end()) return not_found(id);
      if (it->second.doc.HasMember("steps")) {
        steps.CopyFrom(it->second.doc["steps"], steps.GetAllocator());
      } else {
        steps.SetArray();
      }
      run_id = fmt::format("r{}", ++next_run_);
    }
    publish("task.started", fmt::format(R"({{"task_id":"{}","run_id":"{}"}})", json::escape(id), run_id));

    Json run = json::object();
    auto& a = run.GetAllocator();
    const auto started = std::chrono::steady_clock::now();
    run.AddMember("id", JsonValue(run_id.c_str(), a), a);
    run.AddMember("task_id", JsonValue(std::string(id).c_str(), a), a);
    run.AddMember("started_ms", now_ms(), a);
    JsonValue results(rapidjson::kArrayType);
    std::string failure;
    JsonValue empty_args(rapidjson::kObjectType);
    for (auto& step : steps.GetArray()) {
      JsonValue r(rapidjson::kObjectType);
      r.AddMember("tool", JsonValue(step["tool"], a), a);
      const JsonValue& args = step.HasMember("arguments") ? step["arguments"] : empty_args;
      auto out = tools_->call(step["tool"].GetString(), args);
      if (out) {
        r.AddMember("status", "succeeded", a);
        r.AddMember("output", JsonValue(*out, a), a);
        results.PushBack(r, a);
      } else {
        failure = out.error().message;
        r.AddMember("status", "failed", a);
        r.AddMember("error", JsonValue(out.error().code.c_str(), a), a);
        r.AddMember("message", JsonValue(failure.c_str(), a), a);
        results.PushBack(r, a);
        break;  // a pipeline stops at its first failed step
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    const bool ok = failure.empty();
    run.AddMember("status", JsonValue(ok ? "succeeded" : "failed", a), a);
    run.AddMember("duration_ms", ms, a);
    run.AddMember("steps", results, a);
    if (!ok) run.AddMember("error", JsonValue(failure.c_str(), a), a);
    publish(ok ? "task.succeeded" : "task.failed",
            fmt::format(R"({{"task_id":"{}","run_id":"{}","duration_ms":{:.3f}{}}})", json::escape(id), run_id, ms,
                        ok ? "" : fmt::format(R"(,"error":"{}")", json::escape(failure))));
    {
      std::lock_guard lock(mutex_);
      if (auto it = tasks_.find(std::string(id)); it != tasks_.end()) {
        ++it->second.runs;
        it->second.last_status = ok ? "succeeded" : "failed";
      }
      runs_.push_back(json::copy(run));
      while (runs_.size() > kMaxRuns) runs_.pop_front();
    }
    return Response::json(ok ? 200 : 422, run);
  }

  Response list_runs() {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    JsonValue list(rapidjson::kArrayType);
    {
      std::lock_guard lock(mutex_);
      std::size_t n = 0;
      for (auto r = runs_.rbegin(); r != runs_.rend() && n < 100; ++r, ++n) list.PushBack(JsonValue(*r, a), a);
    }
    doc.AddMember("runs", list, a);
    return Response::json(200, doc);
  }

  Response list_tools() {
    Json doc = json::object();
    auto& a = doc.GetAllocator();
    JsonValue list(rapidjson::kArrayType);
    for (const auto& t : tools_->list()) {
      JsonValue v(rapidjson::kObjectType);
      v.AddMember("name", JsonValue(t.name.c_str(), a), a);
      v.AddMember("description", JsonValue(t.description.c_str(), a), a);
      v.AddMember("owner", JsonValue(t.owner.c_str(), a), a);
      v.AddMember("input_schema", JsonValue(*t.input_schema, a), a);
      list.PushBack(v, a);
    }
    doc.AddMember("tools", list, a);
    return Response::json(200, doc);
  }

  const ordinaut::ToolView* tools_ = nullptr;
  const ordinaut::EventPublisher* publisher_ = nullptr;
  std::mutex mutex_;
  std::map<std::string, Task> tasks_;
  std::deque<Json> runs_;
  std::uint64_t next_task_ = 0;
  std::uint64_t next_run_ = 0;
};

}  // namespace

ORDINAUT_EXTENSION(WebUi)
