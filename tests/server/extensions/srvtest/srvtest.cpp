// srvtest: routes that exercise the reference server over real HTTP.
//   GET  /hello                 "hello" (the benchmarks' trivial route)
//   POST /echo                  the body back, with its length
//   POST /items                 request schema {name: string}; 201
//   GET  /items/{id}            the decoded parameter
//   GET  /files/{path...}       the decoded rest of the path
//   GET  /boom                  throws
//   GET  /slow?ms=N             answers after N ms
//   GET  /big?mb=N              N MiB of 'x'
//   GET  /stream?mode=M         SSE: "silent" waits for the client to leave,
//                               "chatty" writes every 20 ms, "finite" writes 3 events,
//                               "parked" waits for the client to leave, checking every 250 ms,
//                               "flood" writes 64 KiB events until a write fails
//   GET  /streams               what the producers saw (started, ended, how)
//   GET  /setups                how often setup() ran in this process
//   GET  /mark                  counts a call (a visible side effect for the
//                               request-smuggling tests); GET /marks reads it
// on_shutdown() appends "srvtest on_shutdown" to $ORDINAUT_TEST_SHUTDOWN_FILE.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <fmt/format.h>

#include <ordinaut/extension.hpp>

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_setups{0};
std::atomic<int> g_marks{0};

struct StreamRecord {
  std::mutex mutex;
  int started = 0;
  int ended = 0;
  std::string last_mode;
  std::string last_reason;  // how the producer learnt the client left: "is_open", "write", "done"
  int last_writes = 0;
};
StreamRecord g_streams;

void stream_ended(const std::string& mode, const char* reason, int writes) {
  std::lock_guard lock(g_streams.mutex);
  ++g_streams.ended;
  g_streams.last_mode = mode;
  g_streams.last_reason = reason;
  g_streams.last_writes = writes;
}

ordinaut::Response produce(std::string mode) {
  {
    std::lock_guard lock(g_streams.mutex);
    ++g_streams.started;
  }
  return ordinaut::Response::event_stream([mode](ordinaut::StreamSink& sink) {
    int writes = 0;
    if (!sink.write(ordinaut::format_sse_event(R"({"ready":true})", "ready"))) {
      stream_ended(mode, "write", writes);
      return;
    }
    ++writes;
    if (mode == "flood") {
      const std::string event = ordinaut::format_sse_event(std::string(64 * 1024, 'f'), "flood");
      while (sink.write(event)) ++writes;
      stream_ended(mode, "write", writes);
      return;
    }
    if (mode == "finite") {
      for (int i = 0; i < 2; ++i) {
        sink.write(ordinaut::format_sse_event(fmt::format(R"({{"n":{}}})", i), "tick", std::to_string(i)));
        ++writes;
      }
      stream_ended(mode, "done", writes);
      return;
    }
    const auto give_up = Clock::now() + std::chrono::seconds(60);  // a test never waits this long
    while (Clock::now() < give_up) {
      if (!sink.is_open()) {
        stream_ended(mode, "is_open", writes);
        return;
      }
      if (mode == "chatty") {
        if (!sink.write(ordinaut::format_sse_event(fmt::format(R"({{"n":{}}})", writes), "tick"))) {
          stream_ended(mode, "write", writes);
          return;
        }
        ++writes;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(mode == "parked" ? 250 : 20));
    }
    stream_ended(mode, "timeout", writes);
  });
}

constexpr const char* kItemSchema = R"({
  "type": "object",
  "required": ["name"],
  "properties": {"name": {"type": "string", "minLength": 1}},
  "additionalProperties": false
})";

constexpr const char* kItemResponseSchema = R"({
  "type": "object",
  "properties": {"name": {"type": "string"}, "created": {"type": "boolean"}}
})";

class SrvTest final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"srvtest", "Server test extension", "1.2.3",
            "Routes that exercise the reference server: echo, schema, errors, slow and streamed responses"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    g_setups.fetch_add(1);
    ordinaut::Router r;
    r.get("/hello", [](ordinaut::Request&) { return ordinaut::Response::text(200, "hello"); },
          {.summary = "A trivial route"});
    r.post("/echo", [](ordinaut::Request& req) {
      return ordinaut::Response::json_text(
          200, fmt::format(R"({{"length":{},"body":"{}","content_type":"{}"}})", req.body.size(),
                           ordinaut::json::escape(req.body), ordinaut::json::escape(req.header("Content-Type"))));
    });
    r.post("/items",
           [](ordinaut::Request& req) {
             auto body = req.json();
             auto name = ordinaut::json::get_string(*body, "name");
             return ordinaut::Response::json_text(
                 201, fmt::format(R"({{"name":"{}","created":true}})", ordinaut::json::escape(*name)));
           },
           {.summary = "Create an item", .request_schema = kItemSchema, .response_schema = kItemResponseSchema});
    r.get("/items/{id}", [](ordinaut::Request& req) {
      return ordinaut::Response::json_text(200, fmt::format(R"({{"id":"{}"}})", ordinaut::json::escape(req.param("id"))));
    });
    r.get("/files/{path...}", [](ordinaut::Request& req) {
      return ordinaut::Response::json_text(200,
                                           fmt::format(R"({{"path":"{}"}})", ordinaut::json::escape(req.param("path"))));
    });
    r.get("/boom", [](ordinaut::Request&) -> ordinaut::Response { throw std::runtime_error("boom on purpose"); });
    r.get("/slow", [](ordinaut::Request& req) {
      const int ms = std::atoi(req.query("ms").value_or("100").c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ordinaut::Response::json_text(200, fmt::format(R"({{"slept_ms":{}}})", ms));
    });
    r.get("/big", [](ordinaut::Request& req) {
      const long mb = std::atol(req.query("mb").value_or("1").c_str());
      return ordinaut::Response::text(200, std::string(static_cast<std::size_t>(std::clamp(mb, 0L, 256L)) << 20, 'x'));
    });
    r.get("/stream", [](ordinaut::Request& req) { return produce(req.query("mode").value_or("silent")); });
    r.get("/streams", [](ordinaut::Request&) {
      std::lock_guard lock(g_streams.mutex);
      return ordinaut::Response::json_text(
          200, fmt::format(R"({{"started":{},"ended":{},"last_mode":"{}","last_reason":"{}","last_writes":{}}})",
                           g_streams.started, g_streams.ended, g_streams.last_mode, g_streams.last_reason,
                           g_streams.last_writes));
    });
    r.get("/mark", [](ordinaut::Request&) {
      return ordinaut::Response::json_text(200, fmt::format(R"({{"marks":{}}})", g_marks.fetch_add(1) + 1));
    });
    r.get("/marks", [](ordinaut::Request&) {
      return ordinaut::Response::json_text(200, fmt::format(R"({{"marks":{}}})", g_marks.load()));
    });
    r.get("/setups", [](ordinaut::Request&) {
      return ordinaut::Response::json_text(200, fmt::format(R"({{"setups":{}}})", g_setups.load()));
    });
    return r;
  }

  void on_shutdown() override {
    const char* file = std::getenv("ORDINAUT_TEST_SHUTDOWN_FILE");
    if (file == nullptr || *file == '\0') return;
    if (std::FILE* f = std::fopen(file, "a")) {
      std::fputs("srvtest on_shutdown\n", f);
      std::fclose(f);
    }
    // A hung on_shutdown, for --lifecycle-timeout.
    if (const char* hang = std::getenv("ORDINAUT_TEST_SHUTDOWN_HANG_MS"); hang != nullptr && *hang != '\0') {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(hang)));
    }
  }
};

}  // namespace

ORDINAUT_EXTENSION(SrvTest)
