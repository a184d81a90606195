// events_demo: publish events over HTTP and watch them live as Server-Sent Events.
//
//   POST /ext/events_demo/publish/{name}   body: any JSON value
//        → 200 {"id": "<event id>", "topic": "events_demo.{name}"}
//   GET  /ext/events_demo/stream/{name}    text/event-stream
//   GET  /ext/events_demo/recent           the history, newest last, one page at a time:
//        ?limit=N (1–1000, default 100) newest events, ?before=<id> older than
//        that event; "next_before" names the id for the next page (null at the
//        end). A page also stops after 1 MiB of event text (one event at least).
//
// Tools (with TOOLS granted; definitions in kPublishTool / kRecentTool below):
//   ext.events_demo.publish {topic, payload}        → {id, topic}
//   ext.events_demo.recent  {limit, before, topic}  → the /recent page
// They share the routes' code, limits and errors (a bad argument is a tool
// error "bad_request", a bus failure "unavailable").
//
// Topic naming: everything this extension publishes is "events_demo.{name}",
// so other extensions subscribe to "events_demo.*" (or one name) without
// catching anyone else's topics. {name} is 1+ characters of [A-Za-z0-9_.:-]
// (the whole topic at most 200). A stream's {name} may also be "*" (every
// events_demo topic) or end in ".*" ("orders.*" → "events_demo.orders.*").
//
// Streams: each event is written as
//   id: <event id>\nevent: <topic>\ndata: <Event::to_json()>\n\n
// with a comment line (": heartbeat") every `heartbeat` seconds (query
// parameter, 0.1–60, default 5) so proxies keep the connection and a client
// that left is noticed. Query parameters `group` and `consumer` are passed to
// the bus: streams in one group share the events, each event going to one of
// them. A stream ends when the client leaves (a write fails), the extension
// shuts down or the server stops; its subscription is then cancelled.
//
// Resume: the bus interface has no history to read back, and the in-memory bus
// keeps none. So events_demo keeps its own: the last events of
// "events_demo.*", recorded by its own subscription, as JSON text (a DOM costs
// up to ~9x its text), bounded by count and by bytes (see Settings). A stream opened with a
// Last-Event-ID header (or `last_event_id` query parameter, for a first
// EventSource connection) first replays the recorded events after that id
// that match its pattern, then goes on live, without duplicates. The id is
// looked up among the events of the stream's own pattern only, and duplicates
// are keyed by (topic, id): Redis stream ids are unique per topic, not across
// topics. An id no
// longer in the history is reported with a comment and the stream goes on
// live. Streams in a group never replay: there the bus's consumer group is
// what resumes (on Redis), and replaying would duplicate what other members
// received. Best effort: an event published just before the stream opened,
// and not yet recorded by the history's own subscription, is not replayed.
// Settings (environment, read at setup; a malformed value is a setup error):
//   ORDINAUT_EVENTS_DEMO_HISTORY_EVENTS  events kept at most (default 1024)
//   ORDINAUT_EVENTS_DEMO_HISTORY_BYTES   bytes of event text kept at most (default
//                                        16 MiB); an event larger than this is
//                                        streamed live but not kept
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <list>
#include <mutex>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <ordinaut/extension.hpp>

namespace {

using ordinaut::Capability;
using ordinaut::Request;
using ordinaut::Response;

constexpr std::size_t kHistoryEvents = 1024;     // defaults of the history budget
constexpr std::size_t kHistoryBytes = 16 * 1024 * 1024;
constexpr std::size_t kRecentDefaultLimit = 100;  // events per /recent page
constexpr std::size_t kRecentMaxLimit = 1000;
constexpr std::size_t kRecentPageBytes = 1024 * 1024;
constexpr std::size_t kStreamQueue = 4096;       // events buffered per slow stream
constexpr std::size_t kMaxStreams = 64;          // each stream holds a server thread
constexpr double kDefaultHeartbeatSeconds = 5;
constexpr std::string_view kPrefix = "events_demo.";

// ---- Tool definitions (names ext.events_demo.publish / .recent) -------------
// Declared too in extension.json ("contributes"), so that they are listed
// before the module loads; the host refuses the load if the two differ.
constexpr const char* kPublishDescription =
    "Publish a JSON payload as an event on topic events_demo.{topic} of the host's event bus; returns the event id. "
    "Subscribers of events_demo.* (and /ext/events_demo/stream/...) receive it.";
constexpr const char* kPublishInput = R"json({
  "type": "object",
  "properties": {
    "topic": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[A-Za-z0-9_.:-]+$",
              "description": "Event name under events_demo. (\"orders\" publishes events_demo.orders; a full events_demo.* topic is accepted too)"},
    "payload": {"description": "The event's payload: any JSON value"}
  },
  "required": ["topic", "payload"],
  "additionalProperties": false
})json";
constexpr const char* kPublishOutput = R"json({
  "type": "object",
  "properties": {
    "id": {"type": "string", "description": "The event id the bus assigned"},
    "topic": {"type": "string", "description": "The full topic, events_demo.{topic}"}
  },
  "required": ["id", "topic"]
})json";
constexpr const char* kPublishAnnotations =
    R"({"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false})";
constexpr const char* kReadOnlyAnnotations = R"({"readOnlyHint":true,"openWorldHint":false})";
constexpr const char* kRecentDescription =
    "The most recent events_demo events this server recorded, newest last, one page at a time (like GET "
    "/ext/events_demo/recent): pass next_before as before for the next, older page.";
constexpr const char* kRecentInput = R"json({
  "type": "object",
  "properties": {
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100,
              "description": "Events per page at most (a page also stops after 1 MiB of event text)"},
    "before": {"type": "string", "minLength": 1, "maxLength": 200,
               "description": "Only events older than this event id (the next_before of the previous page)"},
    "topic": {"type": "string", "minLength": 1, "maxLength": 200,
              "description": "Topic filter under events_demo.: a name (\"orders\"), \"prefix.*\" or \"*\" (default: every topic)"}
  },
  "additionalProperties": false
})json";
constexpr const char* kRecentOutput = R"json({
  "type": "object",
  "properties": {
    "events": {"type": "array", "items": {"type": "object",
      "properties": {"id": {"type": "string"}, "topic": {"type": "string"}, "source": {"type": "string"},
                     "time": {"type": "string"}, "payload": {}},
      "required": ["id", "topic", "source", "time", "payload"]}},
    "next_before": {"type": ["string", "null"], "description": "The before of the next page; null at the end"},
    "capacity": {"type": "integer"},
    "capacity_bytes": {"type": "integer"},
    "recording": {"type": "boolean"}
  },
  "required": ["events", "next_before", "capacity", "capacity_bytes", "recording"]
})json";

std::size_t setting(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (*end != '\0' || errno != 0 || n == 0 || *v == '-') {
    throw std::invalid_argument(fmt::format("{}=\"{}\" must be a whole number above 0", name, v));
  }
  return static_cast<std::size_t>(n);
}

// One event of the history, kept as the text streams and /recent send.
struct Recorded {
  std::string topic;
  std::string id;
  std::string json;  // Event::to_json()
  std::size_t bytes() const { return sizeof(Recorded) + topic.size() + id.size() + json.size(); }
};

bool valid_client_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '-';
  });
}

// One open stream; shared with its bus handler so a late delivery never
// touches freed memory.
struct StreamState {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<ordinaut::Event> queue;
  std::uint64_t dropped = 0;
};

class EventsDemo final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"events_demo", "Events demo", "0.1.0", "Publish, subscribe and stream events over Server-Sent Events"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {Capability::ROUTES, Capability::EVENTS_PUB, Capability::EVENTS_SUB, Capability::TOOLS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    history_events_ = setting("ORDINAUT_EVENTS_DEMO_HISTORY_EVENTS", kHistoryEvents);
    history_bytes_ = setting("ORDINAUT_EVENTS_DEMO_HISTORY_BYTES", kHistoryBytes);
    if (context.granted(Capability::EVENTS_PUB)) publisher_ = &context.events_publisher();
    if (context.granted(Capability::EVENTS_SUB)) {
      subscriber_ = &context.events_subscriber();
      auto sub = subscriber_->subscribe("events_demo.*", [this](const ordinaut::Event& e) { record(e); });
      if (!sub) throw std::runtime_error("cannot subscribe to events_demo.*: " + sub.error().message);
      history_subscription_ = *sub;
    }
    auto& metrics = context.metrics();
    published_ = &metrics.counter("published_total", "Events published through POST /publish/{name}.");
    publish_errors_ = &metrics.counter("publish_errors_total", "Publish requests refused by the bus.");
    streams_ = &metrics.gauge("streams", "Server-Sent Event streams open now.");
    streamed_ = &metrics.counter("streamed_events_total", "Events written to Server-Sent Event streams.");

    if (context.granted(Capability::TOOLS)) register_tools(context.tool_registrar());

    ordinaut::Router router;
    router.post("/publish/{name}", [this](Request& r) { return publish(r); },
                {.summary = "Publish the JSON body to events_demo.{name}; returns the event id",
                 .request_schema = {},
                 .response_schema = R"({"type":"object","required":["id","topic"]})"});
    router.get("/stream/{name}", [this](Request& r) { return stream(r); },
               {.summary = "Server-Sent Events of events_demo.{name} (group, consumer, heartbeat, Last-Event-ID)",
                .request_schema = {},
                .response_schema = {}});
    router.get("/recent", [this](Request& r) { return recent(r); },
               {.summary = "The recorded history (newest last), paginated: ?limit=, ?before=<id>; ?name= filters by "
                           "topic pattern",
                .request_schema = {},
                .response_schema = {}});
    return router;
  }

  void on_shutdown() override {
    history_subscription_.cancel();
    stopping_.store(true);
    std::lock_guard lock(streams_mutex_);
    for (auto& s : open_streams_) {
      { std::lock_guard state_lock(s->mutex); }  // a stream between its check and its wait sees the flag
      s->ready.notify_all();
    }
  }

  ordinaut::Json health_checks() const override {
    ordinaut::Json doc = ordinaut::json::object();
    auto& a = doc.GetAllocator();
    ordinaut::JsonValue h(rapidjson::kObjectType);
    h.AddMember("status", "ok", a);
    {
      std::lock_guard lock(history_mutex_);
      h.AddMember("events", static_cast<std::uint64_t>(history_.size()), a);
      h.AddMember("bytes", static_cast<std::uint64_t>(history_used_), a);
      h.AddMember("skipped_too_large", history_skipped_, a);
    }
    h.AddMember("capacity", static_cast<std::uint64_t>(history_events_), a);
    h.AddMember("capacity_bytes", static_cast<std::uint64_t>(history_bytes_), a);
    h.AddMember("recording", subscriber_ != nullptr, a);
    doc.AddMember("history", h, a);
    ordinaut::JsonValue s(rapidjson::kObjectType);
    s.AddMember("status", "ok", a);
    {
      std::lock_guard lock(streams_mutex_);
      s.AddMember("open", static_cast<std::uint64_t>(open_streams_.size()), a);
    }
    s.AddMember("limit", static_cast<std::uint64_t>(kMaxStreams), a);
    doc.AddMember("streams", s, a);
    return doc;
  }

 private:
  static Response missing(Capability c, std::string_view what) {
    return Response::error(403, "forbidden",
                           fmt::format("events_demo cannot {}: {} is not granted", what, ordinaut::to_string(c)),
                           fmt::format(R"({{"missing_capability":"{}"}})", ordinaut::to_string(c)));
  }

  // An outcome of the code shared by a route and a tool: JSON text, or an
  // error with its HTTP status.
  struct Outcome {
    int status = 200;
    std::string code;     // error code ("bad_request", "unavailable", "forbidden") when status != 200
    std::string message;  // error message
    std::string details;  // error details, JSON object text
    std::string json;     // the result when status == 200
    static Outcome fail(int status, std::string code, std::string message, std::string details = "{}") {
      return {status, std::move(code), std::move(message), std::move(details), {}};
    }
  };
  static Response to_response(Outcome o) {
    if (o.status == 200) return Response::json_text(200, std::move(o.json));
    return Response::error(o.status, o.code, o.message, o.details);
  }
  static ordinaut::Json to_tool_result(Outcome o) {
    if (o.status != 200) throw ordinaut::ToolError(o.code, o.message, o.details);
    auto doc = ordinaut::json::parse(o.json);
    if (!doc) throw std::logic_error("events_demo produced invalid JSON: " + doc.error().message);
    return std::move(doc).value();
  }

  Outcome publish_event(std::string_view name, const ordinaut::JsonValue& payload) {
    if (publisher_ == nullptr) {
      return Outcome::fail(403, "forbidden", "events_demo cannot publish: EVENTS_PUB is not granted",
                           R"({"missing_capability":"EVENTS_PUB"})");
    }
    const std::string topic = fmt::format("{}{}", kPrefix, name);
    if (auto v = ordinaut::validate_topic(topic); !v) {
      return Outcome::fail(400, "bad_request", fmt::format("event name \"{}\" is invalid: {}", name, v.error().message),
                           fmt::format(R"({{"name":"{}"}})", ordinaut::json::escape(name)));
    }
    auto id = publisher_->publish(topic, payload);
    if (!id) {
      publish_errors_->inc();
      const bool client = id.error().code == "invalid_topic";
      return Outcome::fail(client ? 400 : 503, client ? "bad_request" : "unavailable",
                           "the event bus refused the event: " + id.error().message,
                           fmt::format(R"({{"code":"{}"}})", ordinaut::json::escape(id.error().code)));
    }
    published_->inc();
    Outcome ok;
    ok.json = fmt::format(R"({{"id":"{}","topic":"{}"}})", ordinaut::json::escape(*id), ordinaut::json::escape(topic));
    return ok;
  }

  Response publish(Request& request) {
    if (publisher_ == nullptr) return missing(Capability::EVENTS_PUB, "publish");
    if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) {
      return Response::error(400, "bad_request", "request body is empty: send a JSON value, e.g. {\"text\":\"hi\"}");
    }
    auto body = request.json();
    if (!body) {
      ordinaut::Error e = body.error();
      e.message = "request body is not valid JSON: " + e.message;
      return Response::error(400, "bad_request", e);
    }
    return to_response(publish_event(request.param("name"), *body));
  }

  Response stream(Request& request) {
    if (subscriber_ == nullptr) return missing(Capability::EVENTS_SUB, "subscribe");
    const std::string pattern = fmt::format("{}{}", kPrefix, request.param("name"));
    if (!ordinaut::validate_pattern(pattern).ok()) {
      return Response::error(400, "bad_request",
                             fmt::format("stream name \"{}\" is invalid: use [A-Za-z0-9_.:-], \"*\" or \"prefix.*\"",
                                         request.param("name")),
                             fmt::format(R"({{"name":"{}"}})", ordinaut::json::escape(request.param("name"))));
    }
    ordinaut::SubscribeOptions options;
    for (auto [key, target] : {std::pair{"group", &options.group}, std::pair{"consumer", &options.consumer}}) {
      if (auto v = request.query(key)) {
        if (!valid_client_name(*v)) {
          return Response::error(400, "bad_request",
                                 fmt::format("query parameter {} must be 1 to 64 characters of [A-Za-z0-9_.:-]", key),
                                 fmt::format(R"({{"parameter":"{}"}})", key));
        }
        *target = *v;
      }
    }
    if (!options.consumer.empty() && options.group.empty()) {
      return Response::error(400, "bad_request", "query parameter consumer needs group",
                             R"({"parameter":"consumer"})");
    }
    double heartbeat = kDefaultHeartbeatSeconds;
    if (auto v = request.query("heartbeat")) {
      char* end = nullptr;
      heartbeat = std::strtod(v->c_str(), &end);
      if (v->empty() || *end != '\0' || !(heartbeat >= 0.1 && heartbeat <= 60)) {
        return Response::error(400, "bad_request", "query parameter heartbeat must be a number of seconds from 0.1 to 60",
                               R"({"parameter":"heartbeat"})");
      }
    }
    std::string last_id(request.header("Last-Event-ID"));
    if (last_id.empty()) last_id = request.query("last_event_id").value_or("");

    auto state = std::make_shared<StreamState>();
    {
      std::lock_guard lock(streams_mutex_);
      if (stopping_.load()) return Response::error(503, "unavailable", "events_demo is shutting down");
      if (open_streams_.size() >= kMaxStreams) {
        return Response::error(503, "unavailable",
                               fmt::format("too many open streams (limit {}); try again later", kMaxStreams),
                               fmt::format(R"({{"limit":{}}})", kMaxStreams));
      }
      open_streams_.push_back(state);
    }
    // Subscribe before replaying, so nothing published in between is missed.
    auto sub = subscriber_->subscribe(
        pattern,
        [state](const ordinaut::Event& e) {
          {
            std::lock_guard lock(state->mutex);
            if (state->queue.size() >= kStreamQueue) {
              state->queue.pop_front();
              ++state->dropped;
            }
            state->queue.push_back(e);
          }
          state->ready.notify_one();
        },
        options);
    if (!sub) {
      forget(state);
      return Response::error(sub.error().code == "invalid_pattern" ? 400 : 503,
                             sub.error().code == "invalid_pattern" ? "bad_request" : "unavailable",
                             "cannot subscribe: " + sub.error().message,
                             fmt::format(R"({{"code":"{}"}})", ordinaut::json::escape(sub.error().code)));
    }
    // The lease ends the subscription when the producer is gone, whether it
    // ran to the end or never ran at all (HEAD, a server that gave up).
    auto lease = std::make_shared<StreamLease>(this, state, *sub);
    auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(heartbeat));
    if (!options.group.empty()) last_id.clear();
    return Response::event_stream([this, lease, pattern, last_id, interval](ordinaut::StreamSink& sink) {
      run_stream(sink, *lease->state, pattern, last_id, interval);
    });
  }

  struct StreamLease {
    StreamLease(EventsDemo* owner_, std::shared_ptr<StreamState> state_, ordinaut::Subscription subscription_)
        : owner(owner_), state(std::move(state_)), subscription(subscription_) {
      owner->streams_->inc();
    }
    ~StreamLease() {
      subscription.cancel();
      owner->streams_->dec();
      owner->forget(state);
    }
    StreamLease(const StreamLease&) = delete;
    StreamLease& operator=(const StreamLease&) = delete;
    EventsDemo* owner;
    std::shared_ptr<StreamState> state;
    ordinaut::Subscription subscription;
  };

  void run_stream(ordinaut::StreamSink& sink, StreamState& state, const std::string& pattern,
                  const std::string& last_id, std::chrono::milliseconds heartbeat) {
    if (!sink.write(fmt::format("retry: 2000\n: events_demo stream of {}\n\n", pattern))) return;
    std::set<std::pair<std::string, std::string>> replayed;  // (topic, id)
    if (!last_id.empty()) {
      std::vector<std::shared_ptr<const Recorded>> events;
      bool found = false;
      {
        std::lock_guard lock(history_mutex_);
        for (const auto& e : history_) {
          if (!ordinaut::topic_matches(pattern, e->topic)) continue;
          // Only events this stream could have sent count: Redis ids are
          // unique per topic's stream, not across topics.
          if (found) events.push_back(e);
          if (e->id == last_id) found = true;
        }
      }
      if (!found) {
        if (!sink.write(fmt::format(": last-event-id {} is not among the recorded events; streaming live events\n\n",
                                    last_id.substr(0, 100)))) {
          return;
        }
      }
      for (const auto& e : events) {
        replayed.emplace(e->topic, e->id);
        if (!write_event(sink, e->json, e->topic, e->id)) return;
      }
    }
    std::vector<ordinaut::Event> batch;
    while (sink.is_open()) {
      std::uint64_t dropped = 0;
      {
        std::unique_lock lock(state.mutex);
        state.ready.wait_for(lock, heartbeat, [&] { return !state.queue.empty() || stopping_.load(); });
        if (stopping_.load()) return;
        batch.assign(std::make_move_iterator(state.queue.begin()), std::make_move_iterator(state.queue.end()));
        state.queue.clear();
        std::swap(dropped, state.dropped);
      }
      if (batch.empty()) {
        if (!sink.write(": heartbeat\n\n")) return;
        continue;
      }
      if (dropped > 0 && !sink.write(fmt::format(": {} events dropped: this client reads too slowly\n\n", dropped))) {
        return;
      }
      for (const auto& e : batch) {
        if (!replayed.empty() && replayed.count({e.topic, e.id}) > 0) continue;
        if (!write_event(sink, e.to_json(), e.topic, e.id)) return;
      }
      batch.clear();
    }
  }

  bool write_event(ordinaut::StreamSink& sink, const std::string& json, const std::string& topic,
                   const std::string& id) {
    if (!sink.write(ordinaut::format_sse_event(json, topic, id))) return false;
    streamed_->inc();
    return true;
  }

  void forget(const std::shared_ptr<StreamState>& state) {
    std::lock_guard lock(streams_mutex_);
    open_streams_.remove(state);
  }

  void record(const ordinaut::Event& e) {
    auto copy = std::make_shared<const Recorded>(Recorded{e.topic, e.id, e.to_json()});
    const std::size_t bytes = copy->bytes();
    std::lock_guard lock(history_mutex_);
    if (bytes > history_bytes_) {
      ++history_skipped_;
      return;
    }
    while (!history_.empty() && (history_.size() >= history_events_ || history_used_ + bytes > history_bytes_)) {
      history_used_ -= history_.front()->bytes();
      history_.pop_front();
    }
    history_used_ += bytes;
    history_.push_back(std::move(copy));
  }

  Response recent(Request& request) {
    std::size_t limit = kRecentDefaultLimit;
    if (auto v = request.query("limit")) {
      char* end = nullptr;
      errno = 0;
      const unsigned long long n = std::strtoull(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || errno != 0 || (*v)[0] == '-' || n < 1 || n > kRecentMaxLimit) {
        return Response::error(400, "bad_request",
                               fmt::format("query parameter limit must be a whole number from 1 to {}", kRecentMaxLimit),
                               R"({"parameter":"limit"})");
      }
      limit = static_cast<std::size_t>(n);
    }
    return to_response(recent_page(request.query("name"), limit, request.query("before"), "query parameter "));
  }

  // One page of the history, newest last. `what` names how arguments are
  // called in errors ("query parameter " for the route, "argument " for the tool).
  Outcome recent_page(const std::optional<std::string>& name, std::size_t limit, const std::optional<std::string>& before,
                      std::string_view what) const {
    std::string pattern = "events_demo.*";
    if (name) {
      pattern = fmt::format("{}{}", kPrefix, *name);
      if (*name != "*" && !ordinaut::validate_pattern(pattern).ok()) {
        return Outcome::fail(400, "bad_request",
                             fmt::format("{}{} must be a topic name, \"*\" or \"prefix.*\"", what,
                                         what.starts_with("query") ? "name" : "topic"),
                             what.starts_with("query") ? R"({"parameter":"name"})" : R"({"parameter":"topic"})");
      }
      if (*name == "*") pattern = "events_demo.*";
    }
    // Newest first, under the lock only pointers are copied.
    std::vector<std::shared_ptr<const Recorded>> page;
    bool more = false;
    {
      std::lock_guard lock(history_mutex_);
      bool found = !before.has_value();
      std::size_t bytes = 0;
      for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
        const auto& e = *it;
        if (!ordinaut::topic_matches(pattern, e->topic)) continue;
        if (!found) {
          found = e->id == *before;
          continue;
        }
        if (page.size() == limit || (!page.empty() && bytes + e->json.size() > kRecentPageBytes)) {
          more = true;
          break;
        }
        bytes += e->json.size();
        page.push_back(e);
      }
      if (!found) {
        return Outcome::fail(400, "bad_request",
                             fmt::format("{}before names no recorded event of this pattern (it may have been "
                                         "evicted); start again without before",
                                         what),
                             R"({"parameter":"before"})");
      }
    }
    std::string out = fmt::format(R"({{"capacity":{},"capacity_bytes":{},"recording":{},"events":[)",
                                  history_events_, history_bytes_, subscriber_ ? "true" : "false");
    for (auto it = page.rbegin(); it != page.rend(); ++it) {
      if (it != page.rbegin()) out += ',';
      out += (*it)->json;
    }
    out += R"(],"next_before":)";
    out += more ? "\"" + ordinaut::json::escape(page.back()->id) + "\"" : std::string("null");
    out += '}';
    Outcome ok;
    ok.json = std::move(out);
    return ok;
  }

  // ---- tools ----------------------------------------------------------------

  void register_tools(ordinaut::ToolRegistrar& tools) {
    tools.add({.name = tools.prefix() + "publish",
               .title = "Publish an event",
               .description = kPublishDescription,
               .input_schema = kPublishInput,
               .output_schema = kPublishOutput,
               .function = [this](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
                 std::string_view topic = *ordinaut::json::get_string(in, "topic");
                 if (topic.starts_with(kPrefix)) topic.remove_prefix(kPrefix.size());
                 return to_tool_result(publish_event(topic, in["payload"]));
               },
               .annotations = kPublishAnnotations});
    tools.add({.name = tools.prefix() + "recent",
               .title = "Recent events",
               .description = kRecentDescription,
               .input_schema = kRecentInput,
               .output_schema = kRecentOutput,
               .function = [this](const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
                 std::optional<std::string> topic, before;
                 if (auto t = ordinaut::json::get_string(in, "topic")) {
                   std::string_view v = *t;
                   if (v.starts_with(kPrefix)) v.remove_prefix(kPrefix.size());
                   topic = std::string(v);
                 }
                 if (auto b = ordinaut::json::get_string(in, "before")) before = std::string(*b);
                 std::size_t limit = kRecentDefaultLimit;
                 if (in.HasMember("limit")) limit = static_cast<std::size_t>(in["limit"].GetUint64());
                 return to_tool_result(recent_page(topic, limit, before, "argument "));
               },
               .annotations = kReadOnlyAnnotations});
  }

  const ordinaut::EventPublisher* publisher_ = nullptr;
  const ordinaut::EventSubscriber* subscriber_ = nullptr;
  ordinaut::Subscription history_subscription_;

  std::size_t history_events_ = kHistoryEvents;
  std::size_t history_bytes_ = kHistoryBytes;
  mutable std::mutex history_mutex_;
  std::deque<std::shared_ptr<const Recorded>> history_;
  std::size_t history_used_ = 0;     // sum of bytes() over history_
  std::uint64_t history_skipped_ = 0;  // events larger than the whole budget

  mutable std::mutex streams_mutex_;
  std::list<std::shared_ptr<StreamState>> open_streams_;
  std::atomic<bool> stopping_{false};

  ordinaut::Counter* published_ = nullptr;
  ordinaut::Counter* publish_errors_ = nullptr;
  ordinaut::Gauge* streams_ = nullptr;
  ordinaut::Counter* streamed_ = nullptr;
};

}  // namespace

ORDINAUT_EXTENSION(EventsDemo)
