// observability: GET /ext/observability/metrics in the Prometheus text format.
//
// It exposes what the host already counts (requests and latency per route
// template, extension states and load times, tools, event bus, background
// tasks), the process' resource use read from /proc/self, task execution
// statistics it counts from the scheduler's task.* events, and every
// extension's business metrics. Labels only ever hold route templates,
// extension ids, tool names and fixed words, never raw URLs, so the body does
// not grow with the URLs clients invent.
//
// Task events (task_stats.hpp): task.run.started, .succeeded, .failed,
// .cancelled, .skipped and task.created, .updated, .deleted as the scheduler
// publishes them (the run or the task as JSON). Other task.* topics are
// counted as ignored, among them the retired task.started / task.succeeded /
// task.failed; a payload that breaks its shape is counted as invalid.
//
// Tool (with TOOLS granted; definition in kSnapshot* below):
//   ext.observability.snapshot {extension?, routes?} → JSON: per extension its
//   state, requests, errors (status >= 500), latency (count, sum, mean, p50
//   and p99 estimated from the histogram buckets like Prometheus'
//   histogram_quantile) and tool calls; per tool calls, errors and time; the
//   host's own requests; the process' memory, CPU, threads and descriptors.
//
// Resource (with RESOURCES): ext://observability/snapshot, the same JSON for
// every extension. Prompt (with PROMPTS): ext.observability.diagnose
// {extension?}: asks the model to review the metrics, with the snapshot
// embedded as a resource; completion offers the extension ids. Both are
// declared in extension.json too.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>

#include <ordinaut/extension.hpp>
#include <ordinaut/host.hpp>
#include <ordinaut/introspection.hpp>

#include "task_stats.hpp"

namespace {

// ---- Tool definition (name ext.observability.snapshot) ----------------------
// Declared too in extension.json ("contributes"); the host refuses the load if
// the two differ.
constexpr const char* kSnapshotUri = "ext://observability/snapshot";
constexpr const char* kSnapshotDescription =
    "A JSON snapshot of the server's metrics: per extension its state, HTTP requests, errors (status >= 500), "
    "latency (count, sum, mean, p50, p99 in milliseconds, estimated from histogram buckets) and tool calls; per tool "
    "its calls, errors and time; the process' memory, CPU, threads and file descriptors. Counters are totals since "
    "the server started.";
constexpr const char* kSnapshotInput = R"({
  "type": "object",
  "properties": {
    "extension": {"type": "string", "minLength": 1, "maxLength": 128,
                  "description": "Only this extension (and its tools); default: every extension"},
    "routes": {"type": "boolean", "default": false,
               "description": "Also list each route template's requests, errors and latency"}
  },
  "additionalProperties": false
})";
constexpr const char* kSnapshotOutput = R"({
  "type": "object",
  "properties": {
    "extensions": {"type": "array", "items": {"type": "object",
      "properties": {
        "id": {"type": "string"}, "state": {"type": "string"}, "version": {"type": "string"},
        "requests": {"type": "integer"}, "errors": {"type": "integer"},
        "latency": {"type": "object",
      "properties": {"count": {"type": "integer"}, "sum_seconds": {"type": "number"},
                     "mean_ms": {"type": ["number", "null"]}, "p50_ms": {"type": ["number", "null"]},
                     "p99_ms": {"type": ["number", "null"]}},
      "required": ["count", "sum_seconds", "mean_ms", "p50_ms", "p99_ms"]},
        "tool_calls": {"type": "integer"}, "tool_errors": {"type": "integer"},
        "routes": {"type": "array", "items": {"type": "object",
          "properties": {"method": {"type": "string"}, "route": {"type": "string"}, "requests": {"type": "integer"},
                         "errors": {"type": "integer"}, "latency": {"type": "object",
      "properties": {"count": {"type": "integer"}, "sum_seconds": {"type": "number"},
                     "mean_ms": {"type": ["number", "null"]}, "p50_ms": {"type": ["number", "null"]},
                     "p99_ms": {"type": ["number", "null"]}},
      "required": ["count", "sum_seconds", "mean_ms", "p50_ms", "p99_ms"]}},
          "required": ["method", "route", "requests", "errors", "latency"]}}
      },
      "required": ["id", "state", "version", "requests", "errors", "latency", "tool_calls", "tool_errors"]}},
    "tools": {"type": "array", "items": {"type": "object",
      "properties": {"name": {"type": "string"}, "owner": {"type": "string"}, "calls": {"type": "integer"},
                     "errors": {"type": "integer"}, "seconds_total": {"type": "number"}},
      "required": ["name", "owner", "calls", "errors", "seconds_total"]}},
    "host": {"type": "object", "properties": {"requests": {"type": "integer"}, "errors": {"type": "integer"}},
             "required": ["requests", "errors"]},
    "process": {"type": "object",
      "properties": {"resident_bytes": {"type": "number"}, "cpu_seconds": {"type": "number"},
                     "threads": {"type": "number"}, "open_fds": {"type": "number"}, "uptime_seconds": {"type": "number"}},
      "required": ["resident_bytes", "cpu_seconds", "threads", "open_fds", "uptime_seconds"]}
  },
  "required": ["extensions", "tools", "host", "process"]
})";

using ordinaut::Capability;
using ordinaut::MetricType;
using ordinaut::prometheus::TextWriter;

constexpr std::array<const char*, 6> kStatusClasses = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
constexpr std::array<ordinaut::ExtensionState, 6> kExtensionStates = {
    ordinaut::ExtensionState::discovered, ordinaut::ExtensionState::loading, ordinaut::ExtensionState::active,
    ordinaut::ExtensionState::error,      ordinaut::ExtensionState::disabled, ordinaut::ExtensionState::stopped};
constexpr std::array<ordinaut::TaskState, 4> kTaskStates = {
    ordinaut::TaskState::running, ordinaut::TaskState::backing_off, ordinaut::TaskState::failed,
    ordinaut::TaskState::stopped};

std::string read_file(const char* path) {
  std::string text;
  if (FILE* f = std::fopen(path, "re")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

struct ProcessStats {
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double threads = 0;
  double start_time_seconds = 0;
  double open_fds = 0;
  double max_fds = 0;
};

// Reads /proc/self/stat (fields numbered as in proc(5)) and counts /proc/self/fd.
ProcessStats read_process_stats(double boot_time_seconds) {
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessStats p;
  std::string stat = read_file("/proc/self/stat");
  // The command name (field 2) may hold spaces and ')': fields resume after the last ')'.
  auto close = stat.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string_view> fields;
    std::string_view rest(stat.data() + close + 1, stat.size() - close - 1);
    while (!rest.empty()) {
      auto start = rest.find_first_not_of(' ');
      if (start == std::string_view::npos) break;
      rest.remove_prefix(start);
      auto end = rest.find(' ');
      fields.push_back(rest.substr(0, end));
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end);
    }
    auto field = [&](std::size_t number) -> double {  // proc(5) numbering; fields[0] is field 3
      if (number < 3 || number - 3 >= fields.size()) return 0;
      return std::strtod(std::string(fields[number - 3]).c_str(), nullptr);
    };
    p.cpu_seconds = (field(14) + field(15)) / ticks;
    p.threads = field(20);
    p.start_time_seconds = boot_time_seconds + field(22) / ticks;
    p.virtual_bytes = field(23);
    p.resident_bytes = field(24) * page;
  }
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    int count = 0;
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    p.open_fds = count - 1;  // not the directory stream itself
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) p.max_fds = static_cast<double>(limit.rlim_cur);
  return p;
}

double read_boot_time() {
  std::string stat = read_file("/proc/stat");
  auto pos = stat.find("\nbtime ");
  return pos == std::string::npos ? 0 : std::strtod(stat.c_str() + pos + 7, nullptr);
}

// `a="x",b="y"` for TextWriter::raw_labels: built once per series, reused per line.
std::string label_text(std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    ordinaut::prometheus::append_label_value(out, value);
    out += '"';
  }
  return out;
}

double number_field(const ordinaut::JsonValue& object, const char* name, double fallback = 0) {
  if (!object.IsObject()) return fallback;
  auto it = object.FindMember(name);
  return it != object.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : fallback;
}

// Makes per-extension event counters monotonic. The bus reports counters per
// live subscription, and a cancelled subscription's counts vanish with it; the
// last values seen of a vanished subscription are kept here so totals never
// go down. (Deliveries between the last scrape and a cancel are not seen.)
class SubscriptionTotals {
 public:
  struct Totals {
    double delivered = 0, failed = 0, dropped = 0, lag = 0, subscriptions = 0;
  };

  Totals update(const std::string& extension, const ordinaut::JsonValue& subscriptions) {
    std::lock_guard lock(mutex_);
    Known& known = by_extension_[extension];
    std::map<std::string, Counts> live;
    Totals t;
    if (subscriptions.IsArray()) {
      for (const auto& s : subscriptions.GetArray()) {
        std::string id;
        if (auto it = s.FindMember("id"); it != s.MemberEnd()) {
          id = it->value.IsString() ? it->value.GetString() : it->value.IsNumber() ? std::to_string(it->value.GetDouble()) : "";
        }
        Counts c{number_field(s, "delivered"), number_field(s, "failed"), number_field(s, "dropped")};
        t.lag += number_field(s, "lag", number_field(s, "pending"));
        t.subscriptions += 1;
        live[id] = c;
      }
    }
    for (auto& [id, last] : known.live) {
      if (!live.contains(id)) {
        known.retired.delivered += last.delivered;
        known.retired.failed += last.failed;
        known.retired.dropped += last.dropped;
      }
    }
    known.live = std::move(live);
    Counts sum = known.retired;
    for (auto& [id, c] : known.live) {
      sum.delivered += c.delivered;
      sum.failed += c.failed;
      sum.dropped += c.dropped;
    }
    // Scrapes run concurrently: never report less than before.
    known.reported.delivered = std::max(known.reported.delivered, sum.delivered);
    known.reported.failed = std::max(known.reported.failed, sum.failed);
    known.reported.dropped = std::max(known.reported.dropped, sum.dropped);
    t.delivered = known.reported.delivered;
    t.failed = known.reported.failed;
    t.dropped = known.reported.dropped;
    return t;
  }

 private:
  struct Counts {
    double delivered = 0, failed = 0, dropped = 0;
  };
  struct Known {
    std::map<std::string, Counts> live;
    Counts retired;
    Counts reported;
  };
  std::mutex mutex_;
  std::map<std::string, Known> by_extension_;
};

class Observability final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"observability", "Observability", "0.1.0",
            "Prometheus metrics for the host, its extensions, tools, events and the process"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {Capability::ROUTES, Capability::EVENTS_SUB, Capability::TOOLS, Capability::RESOURCES,
            Capability::PROMPTS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    host_ = &context.introspection();
    boot_time_ = read_boot_time();
    for (double bound : ordinaut::latency_buckets()) {
      std::string le;
      ordinaut::prometheus::append_value(le, bound);
      latency_le_.push_back(std::move(le));
    }
    task_stats_ = std::make_unique<ordinaut::observability::TaskStats>(task_metrics_);
    if (context.granted(Capability::EVENTS_SUB)) {
      auto sub = context.events_subscriber().subscribe(
          "task.*", [this](const ordinaut::Event& event) { task_stats_->record(event); });
      if (!sub) throw std::runtime_error("cannot subscribe to task.*: " + sub.error().message);
      subscription_ = *sub;
      task_events_subscribed_ = true;
    } else {
      context.logger().warn("task_events_off", "EVENTS_SUB is not granted: task.* statistics are not collected");
    }

    if (context.granted(Capability::TOOLS)) {
      ordinaut::ToolRegistrar& tools = context.tool_registrar();
      tools.add({.name = tools.prefix() + "snapshot",
                 .title = "Metrics snapshot",
                 .description = kSnapshotDescription,
                 .input_schema = kSnapshotInput,
                 .output_schema = kSnapshotOutput,
                 .function = [this](const ordinaut::JsonValue& in, ordinaut::ToolContext&) { return snapshot(in); },
                 .annotations = R"({"readOnlyHint":true,"openWorldHint":false})"});
    }

    if (context.granted(Capability::RESOURCES)) {
      context.resource_registrar().add({
          .uri = kSnapshotUri,
          .name = "metrics-snapshot",
          .title = "Metrics snapshot",
          .description = "The server's metrics as JSON (what ext.observability.snapshot returns for every extension)",
          .mime_type = "application/json",
          .read =
              [this](const ordinaut::ResourceRequest& r) {
                return std::vector<ordinaut::ResourceContents>{ordinaut::ResourceContents::make_text(
                    r.uri, ordinaut::json::dump(snapshot(ordinaut::json::object())))};
              },
      });
    }
    if (context.granted(Capability::PROMPTS)) {
      context.prompt_registrar().add({
          .name = "ext.observability.diagnose",
          .title = "Diagnose the server",
          .description = "Ask for a review of the server's metrics (errors, latency, tool failures, memory), with "
                         "the current metrics snapshot attached",
          .arguments = {{.name = "extension",
                         .title = "Extension",
                         .description = "Focus on this extension (default: the whole server)",
                         .required = false}},
          .get = [this](const ordinaut::StringMap& args) { return diagnose(args); },
          .complete =
              [this](std::string_view, std::string_view value, const ordinaut::StringMap&) {
                std::vector<std::string> ids;
                for (const auto& e : host_->extensions()) {
                  if (e.id.starts_with(value)) ids.push_back(e.id);
                }
                return ids;
              },
      });
    }

    ordinaut::Router router;
    router.get("/metrics", [this](ordinaut::Request&) { return render(); },
               {.summary = "Prometheus metrics (text format 0.0.4)", .request_schema = {}, .response_schema = {}});
    return router;
  }

  void on_shutdown() override { subscription_.cancel(); }

 private:
  ordinaut::Response render() {
    std::string out;
    out.reserve(last_size_.load(std::memory_order_relaxed) + 4096);
    TextWriter w(out);
    const auto extensions = host_->extensions();
    const auto host = host_->host_requests();
    render_http(w, extensions, host);
    render_extensions(w, extensions);
    render_tools(w);
    render_events(w, extensions);
    render_background_tasks(w);
    render_process(w);
    task_metrics_.write_prometheus(out);
    w.family("ordinaut_task_events_subscribed", "1 when observability receives task.* events (EVENTS_SUB granted).",
             MetricType::gauge);
    w.sample("ordinaut_task_events_subscribed").value(task_events_subscribed_ ? 1.0 : 0.0);
    w.family("ordinaut_build_info", "Library version and plugin ABI version.", MetricType::gauge);
    w.sample("ordinaut_build_info")
        .label("version", ordinaut::library_version())
        .label("abi", std::to_string(ordinaut::library_abi_version()))
        .value(1.0);
    host_->metrics().write_prometheus(out);  // business metrics of every extension
    last_size_.store(out.size(), std::memory_order_relaxed);
    return ordinaut::Response::text(200, std::move(out), ordinaut::prometheus::kContentType);
  }

  void render_http(TextWriter& w, const std::vector<ordinaut::ExtensionSnapshot>& extensions,
                   const ordinaut::RouteMetrics& host) {
    // Like a client library's labelled children, a route's series appear with
    // its first request: the set is bounded by the mounted routes. Label text
    // is built once per route for the lines it gets.
    std::vector<std::pair<std::string, const ordinaut::RouteMetrics*>> routes;
    if (host.requests > 0) {
      routes.emplace_back(label_text({{"extension", "(host)"}, {"method", host.method}, {"route", host.route}}),
                          &host);
    }
    for (const auto& e : extensions) {
      for (const auto& r : e.routes) {
        if (r.requests == 0) continue;
        routes.emplace_back(label_text({{"extension", e.id}, {"method", r.method}, {"route", r.route}}), &r);
      }
    }
    auto each_route = [&](auto&& fn) {
      for (const auto& [labels, r] : routes) fn(labels, *r);
    };
    w.family("ordinaut_http_requests_total",
             "HTTP requests under /ext by extension, method, route template and status class. Requests the host "
             "answers itself have extension and route \"(host)\"; unmatched paths of an extension have route "
             "\"(unrouted)\".",
             MetricType::counter);
    each_route([&](const std::string& labels, const ordinaut::RouteMetrics& r) {
      for (std::size_t c = 1; c < kStatusClasses.size(); ++c) {
        if (r.status_class[c] == 0) continue;
        w.sample("ordinaut_http_requests_total")
            .raw_labels(labels)
            .label("status_class", kStatusClasses[c])
            .value(r.status_class[c]);
      }
    });
    w.family("ordinaut_http_request_duration_seconds",
             "Time to produce the response (streams: until the stream starts), by extension, method, route "
             "template and status class.",
             MetricType::histogram);
    std::string with_class;
    each_route([&](const std::string& labels, const ordinaut::RouteMetrics& r) {
      for (std::size_t c = 1; c < kStatusClasses.size(); ++c) {
        if (r.status_class[c] == 0) continue;
        with_class = labels;
        with_class += ",status_class=\"";
        with_class += kStatusClasses[c];
        with_class += '"';
        write_latency(w, "ordinaut_http_request_duration_seconds", r.class_buckets[c], r.status_class[c],
                      r.class_seconds[c], with_class);
      }
    });
  }

  void write_latency(TextWriter& w, std::string_view name, const std::vector<std::uint64_t>& cumulative,
                     std::uint64_t count, double sum, std::string_view labels) {
    // The counters are read one by one while requests go on: keep +Inf >= every bucket.
    if (!cumulative.empty()) count = std::max(count, cumulative.back());
    for (std::size_t i = 0; i < latency_le_.size(); ++i) {
      w.sample(name, "_bucket").raw_labels(labels).label("le", latency_le_[i]).value(
          i < cumulative.size() ? cumulative[i] : count);
    }
    w.sample(name, "_bucket").raw_labels(labels).label("le", "+Inf").value(count);
    w.sample(name, "_sum").raw_labels(labels).value(sum);
    w.sample(name, "_count").raw_labels(labels).value(count);
  }

  void render_extensions(TextWriter& w, const std::vector<ordinaut::ExtensionSnapshot>& extensions) {
    w.family("ordinaut_extension_requests_total", "HTTP requests an extension served (all its routes).",
             MetricType::counter);
    for (const auto& e : extensions) w.sample("ordinaut_extension_requests_total").label("extension", e.id).value(e.requests);
    w.family("ordinaut_extension_errors_total", "Responses with status >= 500 from an extension's routes.",
             MetricType::counter);
    for (const auto& e : extensions) w.sample("ordinaut_extension_errors_total").label("extension", e.id).value(e.errors);
    // Sum and count only: the buckets are in ordinaut_http_request_duration_seconds
    // (sum by extension for an extension's quantiles).
    w.family("ordinaut_extension_request_duration_seconds", "Request latency of an extension, all routes together.",
             MetricType::summary);
    for (const auto& e : extensions) {
      double sum = 0;
      for (const auto& r : e.routes) sum += r.seconds_total;
      w.sample("ordinaut_extension_request_duration_seconds", "_sum").label("extension", e.id).value(sum);
      w.sample("ordinaut_extension_request_duration_seconds", "_count").label("extension", e.id).value(e.requests);
    }
    w.family("ordinaut_extension_load_duration_seconds",
             "Time the last successful load took (module, setup, startup); 0 before the first load.",
             MetricType::gauge);
    for (const auto& e : extensions) {
      w.sample("ordinaut_extension_load_duration_seconds").label("extension", e.id).value(e.load_ms / 1000.0);
    }
    w.family("ordinaut_extension_state", "1 for the state the extension is in, 0 for the others.", MetricType::gauge);
    for (const auto& e : extensions) {
      for (auto state : kExtensionStates) {
        w.sample("ordinaut_extension_state")
            .label("extension", e.id)
            .label("state", ordinaut::to_string(state))
            .value(e.state == state ? 1.0 : 0.0);
      }
    }
    w.family("ordinaut_extension_info", "Discovered extensions with their version and discovery source.",
             MetricType::gauge);
    for (const auto& e : extensions) {
      w.sample("ordinaut_extension_info")
          .label("extension", e.id)
          .label("version", e.version)
          .label("source", e.source)
          .value(1.0);
    }
  }

  void render_tools(TextWriter& w) {
    const auto tools = host_->tool_stats();
    w.family("ordinaut_tool_calls_total", "Tool calls, by tool and owning extension.", MetricType::counter);
    for (const auto& t : tools) w.sample("ordinaut_tool_calls_total").label("tool", t.name).label("owner", t.owner).value(t.calls);
    w.family("ordinaut_tool_errors_total", "Tool calls that returned an error.", MetricType::counter);
    for (const auto& t : tools) w.sample("ordinaut_tool_errors_total").label("tool", t.name).label("owner", t.owner).value(t.errors);
    w.family("ordinaut_tool_call_duration_seconds", "Time spent in tool calls (sum and count).", MetricType::summary);
    for (const auto& t : tools) {
      w.sample("ordinaut_tool_call_duration_seconds", "_sum").label("tool", t.name).label("owner", t.owner).value(t.seconds_total);
      w.sample("ordinaut_tool_call_duration_seconds", "_count").label("tool", t.name).label("owner", t.owner).value(t.calls);
    }
  }

  void render_events(TextWriter& w, const std::vector<ordinaut::ExtensionSnapshot>& extensions) {
    ordinaut::Json bus = host_->event_bus_health();
    std::string kind = "unknown";
    if (auto k = ordinaut::json::get_string(bus, "kind")) kind = std::string(*k);
    bool connected = true;
    if (bus.IsObject() && bus.HasMember("connected") && bus["connected"].IsBool()) connected = bus["connected"].GetBool();
    w.family("ordinaut_event_bus_connected", "1 while the event bus can publish (Redis: connected).",
             MetricType::gauge);
    w.sample("ordinaut_event_bus_connected").label("bus", kind).value(connected ? 1.0 : 0.0);
    w.family("ordinaut_events_published_total", "Events published on the bus (the bus does not count per topic).",
             MetricType::counter);
    w.sample("ordinaut_events_published_total").label("bus", kind).value(number_field(bus, "published"));
    bool up = connected;
    if (bus.IsObject() && bus.HasMember("up") && bus["up"].IsBool()) up = bus["up"].GetBool();
    w.family("ordinaut_events_bus_up", "1 while the event bus reaches its server and it answers (0 or 1).",
             MetricType::gauge);
    w.sample("ordinaut_events_bus_up").label("bus", kind).value(up ? 1.0 : 0.0);
    // Counters only some buses keep (Redis): exported when the bus reports them.
    for (auto [field, name, help] :
         {std::tuple{"reconnects", "ordinaut_event_bus_reconnects_total",
                     "Reconnections of the event bus to its server (also as ordinaut_events_bus_reconnects_total)."},
          std::tuple{"reconnects", "ordinaut_events_bus_reconnects_total",
                     "Reconnections of the event bus to its server."},
          std::tuple{"group_recreated", "ordinaut_events_group_recreated_total",
                     "Consumer groups the bus recreated after its server lost them (FLUSHALL, restart without "
                     "persistence)."},
          std::tuple{"publish_errors", "ordinaut_event_publish_errors_total",
                     "Publishes the event bus refused or could not deliver to its server."}}) {
      if (!bus.IsObject() || !bus.HasMember(field)) continue;
      w.family(name, help, MetricType::counter);
      w.sample(name).label("bus", kind).value(number_field(bus, field));
    }
    if (bus.IsObject() && bus.HasMember("rejected") && bus["rejected"].IsObject()) {
      w.family("ordinaut_events_rejected_total",
               "Entries read from the bus that were no events (not JSON, too deep, no payload): acknowledged, "
               "never delivered.",
               MetricType::counter);
      for (const auto& m : bus["rejected"].GetObject()) {
        if (!m.value.IsNumber()) continue;
        w.sample("ordinaut_events_rejected_total").label("bus", kind).label("reason", m.name.GetString()).value(
            m.value.GetDouble());
      }
    }

    std::vector<SubscriptionTotals::Totals> totals;
    std::vector<ordinaut::Json> subscriptions;
    totals.reserve(extensions.size());
    subscriptions.reserve(extensions.size());
    for (const auto& e : extensions) {
      subscriptions.push_back(host_->subscriber_health(e.id));
      totals.push_back(subscriptions_.update(e.id, subscriptions.back()));
    }
    // Per subscription: entries not yet read, and how long ago a read last
    // answered (the Redis bus reports both).
    auto per_subscription = [&](const char* name, const char* help, const char* field, double scale) {
      w.family(name, help, MetricType::gauge);
      for (std::size_t i = 0; i < extensions.size(); ++i) {
        if (!subscriptions[i].IsArray()) continue;
        for (const auto& s : subscriptions[i].GetArray()) {
          if (!s.IsObject() || !s.HasMember(field) || !s[field].IsNumber()) continue;
          const std::string pattern(ordinaut::json::get_string(s, "pattern").value_or(""));
          w.sample(name).label("extension", extensions[i].id).label("pattern", pattern).value(s[field].GetDouble() *
                                                                                               scale);
        }
      }
    };
    per_subscription("ordinaut_events_read_lag", "Entries of a subscription's streams not yet read by its group.",
                     "lag", 1.0);
    per_subscription("ordinaut_events_read_age_seconds",
                     "Seconds since a subscription's last read answered; grows while it cannot read.", "read_age_ms",
                     0.001);
    auto family = [&](const char* name, const char* help, MetricType type, double SubscriptionTotals::Totals::*field) {
      w.family(name, help, type);
      for (std::size_t i = 0; i < extensions.size(); ++i) {
        w.sample(name).label("extension", extensions[i].id).value(totals[i].*field);
      }
    };
    family("ordinaut_events_delivered_total", "Events handled successfully by an extension's subscriptions.",
           MetricType::counter, &SubscriptionTotals::Totals::delivered);
    family("ordinaut_events_failed_total", "Events whose handler kept failing after the bus's retries.",
           MetricType::counter, &SubscriptionTotals::Totals::failed);
    family("ordinaut_events_dropped_total", "Events dropped because a subscription's queue was full.",
           MetricType::counter, &SubscriptionTotals::Totals::dropped);
    family("ordinaut_events_lag", "Events waiting for an extension's subscriptions (queued, or not yet read).",
           MetricType::gauge, &SubscriptionTotals::Totals::lag);
    family("ordinaut_event_subscriptions", "Live event subscriptions of an extension.", MetricType::gauge,
           &SubscriptionTotals::Totals::subscriptions);
  }

  void render_background_tasks(TextWriter& w) {
    const auto all = host_->background_tasks();
    w.family("ordinaut_background_task_state", "1 for the state a background task is in, 0 for the others.",
             MetricType::gauge);
    for (const auto& ext : all) {
      for (const auto& t : ext.tasks) {
        for (auto state : kTaskStates) {
          w.sample("ordinaut_background_task_state")
              .label("extension", ext.extension_id)
              .label("task", t.name)
              .label("state", ordinaut::to_string(state))
              .value(t.state == state ? 1.0 : 0.0);
        }
      }
    }
    w.family("ordinaut_background_task_restarts_total", "Restarts of a background task after it failed.",
             MetricType::counter);
    for (const auto& ext : all) {
      for (const auto& t : ext.tasks) {
        w.sample("ordinaut_background_task_restarts_total")
            .label("extension", ext.extension_id)
            .label("task", t.name)
            .value(t.restarts);
      }
    }
    w.family("ordinaut_background_task_last_success_timestamp_seconds",
             "Unix time of a background task's last clean run; 0 if none.", MetricType::gauge);
    for (const auto& ext : all) {
      for (const auto& t : ext.tasks) {
        w.sample("ordinaut_background_task_last_success_timestamp_seconds")
            .label("extension", ext.extension_id)
            .label("task", t.name)
            .value(static_cast<double>(t.last_success_ms) / 1000.0);
      }
    }
  }

  void render_process(TextWriter& w) {
    const ProcessStats p = read_process_stats(boot_time_);
    auto one = [&](const char* name, const char* help, MetricType type, double value) {
      w.family(name, help, type);
      w.sample(name).value(value);
    };
    one("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", MetricType::counter,
        p.cpu_seconds);
    one("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::gauge, p.resident_bytes);
    one("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::gauge, p.virtual_bytes);
    one("process_open_fds", "Open file descriptors.", MetricType::gauge, p.open_fds);
    one("process_max_fds", "Limit of open file descriptors.", MetricType::gauge, p.max_fds);
    one("process_threads", "Threads of the process.", MetricType::gauge, p.threads);
    one("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
        MetricType::gauge, p.start_time_seconds);
  }

  // ---- the snapshot tool -----------------------------------------------------

  // The q-quantile (0..1) of a cumulative histogram, in milliseconds: linear
  // within the bucket it falls in (as Prometheus' histogram_quantile); the
  // last finite bound when it falls in +Inf; null without observations.
  static void add_latency(ordinaut::JsonValue& into, const char* name, const std::vector<std::uint64_t>& cumulative,
                          std::uint64_t count, double sum, ordinaut::Json::AllocatorType& a) {
    const auto& bounds = ordinaut::latency_buckets();
    auto quantile = [&](double q) -> ordinaut::JsonValue {
      if (count == 0 || cumulative.empty()) return ordinaut::JsonValue(rapidjson::kNullType);
      const double rank = q * static_cast<double>(count);
      double lower = 0;
      std::uint64_t below = 0;
      for (std::size_t i = 0; i < bounds.size() && i < cumulative.size(); ++i) {
        if (static_cast<double>(cumulative[i]) >= rank) {
          const double in_bucket = static_cast<double>(cumulative[i] - below);
          const double fraction = in_bucket > 0 ? (rank - static_cast<double>(below)) / in_bucket : 1.0;
          return ordinaut::JsonValue((lower + (bounds[i] - lower) * fraction) * 1000.0);
        }
        lower = bounds[i];
        below = cumulative[i];
      }
      return ordinaut::JsonValue(bounds.empty() ? 0.0 : bounds.back() * 1000.0);
    };
    ordinaut::JsonValue l(rapidjson::kObjectType);
    l.AddMember("count", count, a);
    l.AddMember("sum_seconds", sum, a);
    if (count > 0) {
      l.AddMember("mean_ms", sum / static_cast<double>(count) * 1000.0, a);
    } else {
      l.AddMember("mean_ms", ordinaut::JsonValue(rapidjson::kNullType), a);
    }
    l.AddMember("p50_ms", quantile(0.5), a);
    l.AddMember("p99_ms", quantile(0.99), a);
    into.AddMember(ordinaut::JsonValue(name, a), l, a);
  }

  ordinaut::PromptResult diagnose(const ordinaut::StringMap& args) const {
    ordinaut::Json in = ordinaut::json::object();
    std::string focus = "the whole server";
    if (auto it = args.find("extension"); it != args.end() && !it->second.empty()) {
      in.AddMember("extension", ordinaut::JsonValue(it->second.c_str(), in.GetAllocator()), in.GetAllocator());
      focus = "extension '" + it->second + "'";
    }
    ordinaut::Json metrics;
    try {
      metrics = snapshot(in);
    } catch (const ordinaut::ToolError& e) {
      throw ordinaut::PromptError("invalid_arguments", e.what());
    }
    return ordinaut::PromptResult{
        .description = "Review of " + focus,
        .messages = {
            {.role = "user",
             .content = ordinaut::ContentBlock::make_text(
                 "Review the metrics of " + focus +
                 " below. Point out extensions that are not active, error rates (errors / requests), high p99 "
                 "latency, failing tools and memory growth; say what to look at first and why.")},
            {.role = "user",
             .content = ordinaut::ContentBlock::make_resource(ordinaut::ResourceContents::make_text(
                 kSnapshotUri, ordinaut::json::dump(metrics), "application/json"))},
        }};
  }

  ordinaut::Json snapshot(const ordinaut::JsonValue& in) const {
    std::optional<std::string> only;
    if (auto e = ordinaut::json::get_string(in, "extension")) only = std::string(*e);
    const bool with_routes = in.HasMember("routes") && in["routes"].GetBool();
    const auto extensions = host_->extensions();
    const auto tools = host_->tool_stats();
    if (only && std::none_of(extensions.begin(), extensions.end(), [&](const auto& e) { return e.id == *only; })) {
      throw ordinaut::ToolError("not_found", "no extension \"" + *only + "\" is known to this host");
    }
    ordinaut::Json doc = ordinaut::json::object();
    auto& a = doc.GetAllocator();
    ordinaut::JsonValue list(rapidjson::kArrayType);
    for (const auto& e : extensions) {
      if (only && e.id != *only) continue;
      ordinaut::JsonValue x(rapidjson::kObjectType);
      x.AddMember("id", ordinaut::JsonValue(e.id.c_str(), a), a);
      x.AddMember("state", ordinaut::JsonValue(ordinaut::to_string(e.state), a), a);
      x.AddMember("version", ordinaut::JsonValue(e.version.c_str(), a), a);
      x.AddMember("requests", e.requests, a);
      x.AddMember("errors", e.errors, a);
      // The extension's histogram: its routes' cumulative buckets added up.
      std::vector<std::uint64_t> buckets;
      std::uint64_t count = 0;
      double sum = 0;
      for (const auto& r : e.routes) {
        if (buckets.size() < r.buckets.size()) buckets.resize(r.buckets.size(), 0);
        for (std::size_t i = 0; i < r.buckets.size(); ++i) buckets[i] += r.buckets[i];
        count += r.requests;
        sum += r.seconds_total;
      }
      add_latency(x, "latency", buckets, count, sum, a);
      std::uint64_t calls = 0, errors = 0;
      for (const auto& t : tools) {
        if (t.owner != e.id) continue;
        calls += t.calls;
        errors += t.errors;
      }
      x.AddMember("tool_calls", calls, a);
      x.AddMember("tool_errors", errors, a);
      if (with_routes) {
        ordinaut::JsonValue routes(rapidjson::kArrayType);
        for (const auto& r : e.routes) {
          ordinaut::JsonValue rv(rapidjson::kObjectType);
          rv.AddMember("method", ordinaut::JsonValue(r.method.c_str(), a), a);
          rv.AddMember("route", ordinaut::JsonValue(r.route.c_str(), a), a);
          rv.AddMember("requests", r.requests, a);
          rv.AddMember("errors", r.errors, a);
          add_latency(rv, "latency", r.buckets, r.requests, r.seconds_total, a);
          routes.PushBack(rv, a);
        }
        x.AddMember("routes", routes, a);
      }
      list.PushBack(x, a);
    }
    doc.AddMember("extensions", list, a);
    ordinaut::JsonValue tool_list(rapidjson::kArrayType);
    for (const auto& t : tools) {
      if (only && t.owner != *only) continue;
      ordinaut::JsonValue tv(rapidjson::kObjectType);
      tv.AddMember("name", ordinaut::JsonValue(t.name.c_str(), a), a);
      tv.AddMember("owner", ordinaut::JsonValue(t.owner.c_str(), a), a);
      tv.AddMember("calls", t.calls, a);
      tv.AddMember("errors", t.errors, a);
      tv.AddMember("seconds_total", t.seconds_total, a);
      tool_list.PushBack(tv, a);
    }
    doc.AddMember("tools", tool_list, a);
    const auto host = host_->host_requests();
    ordinaut::JsonValue hv(rapidjson::kObjectType);
    hv.AddMember("requests", host.requests, a);
    hv.AddMember("errors", host.errors, a);
    doc.AddMember("host", hv, a);
    const ProcessStats p = read_process_stats(boot_time_);
    ordinaut::JsonValue pv(rapidjson::kObjectType);
    pv.AddMember("resident_bytes", p.resident_bytes, a);
    pv.AddMember("cpu_seconds", p.cpu_seconds, a);
    pv.AddMember("threads", p.threads, a);
    pv.AddMember("open_fds", p.open_fds, a);
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    pv.AddMember("uptime_seconds", p.start_time_seconds > 0 ? std::max(0.0, now - p.start_time_seconds) : 0.0, a);
    doc.AddMember("process", pv, a);
    return doc;
  }

  const ordinaut::HostIntrospection* host_ = nullptr;
  double boot_time_ = 0;
  std::vector<std::string> latency_le_;
  std::atomic<std::size_t> last_size_{0};
  SubscriptionTotals subscriptions_;

  ordinaut::MetricsRegistry task_metrics_;  // unprefixed: ordinaut_task_*
  std::unique_ptr<ordinaut::observability::TaskStats> task_stats_;
  ordinaut::Subscription subscription_;
  bool task_events_subscribed_ = false;
};

}  // namespace

ORDINAUT_EXTENSION(Observability)
