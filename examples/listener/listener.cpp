// listener: extensions talking to each other through events.
//
// events_demo publishes whatever is POSTed to /ext/events_demo/publish/{name}
// on topic "events_demo.{name}". This extension, which knows nothing else of
// events_demo, subscribes to "events_demo.*" at setup (it is eager, so it
// hears events from the start) and keeps the last kKeep events:
//   GET /ext/listener/received[?limit=N]
//     → {"total": <events received>, "capacity": 100,
//        "events": [<Event::to_json()>, ...]}   (oldest first, at most N)
// The same list is the tool ext.listener.received ({"limit": 1..100}), so MCP
// clients and webui pipelines can read it too. It also counts what it hears as
// a business metric, ext_listener_received_total{source="<publishing extension>"}.
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>

#include <ordinaut/extension.hpp>

namespace {

constexpr std::size_t kKeep = 100;

class Listener final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"listener", "Listener", "1.0.0",
            "Subscribes to events_demo.* and shows what it received: extensions talking through events"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override {
    return {ordinaut::Capability::ROUTES, ordinaut::Capability::EVENTS_SUB, ordinaut::Capability::TOOLS};
  }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    metrics_ = &context.metrics();
    // Throws CapabilityError without EVENTS_SUB: setup fails with that reason.
    auto sub = context.events_subscriber().subscribe("events_demo.*",
                                                     [this](const ordinaut::Event& e) { receive(e); });
    if (!sub) throw std::runtime_error("cannot subscribe to events_demo.*: " + sub.error().message);
    subscription_ = *sub;

    if (context.granted(ordinaut::Capability::TOOLS)) {
      context.tool_registrar().add(
          {.name = "ext.listener.received",
           .title = "Events the listener received",
           .description = "The last events received from events_demo.* (oldest first), at most `limit` (default 100)",
           .input_schema = R"({"type":"object","properties":{"limit":{"type":"integer","minimum":1,"maximum":100}},)"
                           R"("additionalProperties":false})",
           .output_schema = R"({"type":"object","required":["total","events"]})",
           .function = [this](const ordinaut::JsonValue& input, ordinaut::ToolContext&) {
             // The input schema checked the type and range already.
             const std::size_t limit = *ordinaut::json::get_or<std::uint64_t>(input, "/limit", kKeep);
             return std::move(ordinaut::json::parse(received_json(limit))).value();
           }});
    }

    ordinaut::Router router;
    router.get("/received", [this](ordinaut::Request& r) { return received(r); },
               {.summary = "The last events received from events_demo.* (oldest first)",
                .request_schema = {},
                .response_schema = {}});
    return router;
  }

  void on_shutdown() override { subscription_.cancel(); }

 private:
  void receive(const ordinaut::Event& e) {
    std::string json = e.to_json();
    ordinaut::Counter* counter;
    {
      std::lock_guard lock(mutex_);
      if (events_.size() >= kKeep) events_.pop_front();
      events_.push_back(std::move(json));
      ++total_;
      auto& c = by_source_[e.source];
      // Sources are extension ids, so the label set stays small.
      if (c == nullptr) c = &metrics_->counter("received_total", "Events received from events_demo.*", {{"source", e.source}});
      counter = c;
    }
    counter->inc();
  }

  ordinaut::Response received(ordinaut::Request& request) {
    std::size_t limit = kKeep;
    if (auto v = request.query("limit")) {
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || n < 1 || n > static_cast<long>(kKeep)) {
        return ordinaut::Response::error(400, "bad_request",
                                         "query parameter limit must be a whole number from 1 to 100",
                                         R"({"parameter":"limit"})");
      }
      limit = static_cast<std::size_t>(n);
    }
    return ordinaut::Response::json_text(200, received_json(limit));
  }

  // {"total", "capacity", "events"}: the last `limit` events, oldest first.
  std::string received_json(std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::string out = R"({"total":)" + std::to_string(total_) + R"(,"capacity":)" + std::to_string(kKeep) +
                      R"(,"events":[)";
    std::size_t skip = events_.size() > limit ? events_.size() - limit : 0;
    for (std::size_t i = skip; i < events_.size(); ++i) {
      if (i > skip) out += ',';
      out += events_[i];
    }
    out += "]}";
    return out;
  }

  ordinaut::MetricsRegistry* metrics_ = nullptr;
  ordinaut::Subscription subscription_;
  std::mutex mutex_;
  std::deque<std::string> events_;
  std::uint64_t total_ = 0;
  std::map<std::string, ordinaut::Counter*> by_source_;
};

}  // namespace

ORDINAUT_EXTENSION(Listener)
