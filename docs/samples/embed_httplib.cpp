// The sample of docs/embedding.md: an existing cpp-httplib program that embeds
// the extension host. It shows the server adapter (request and response
// conversion, streaming through StreamSink), a linked-in extension registered
// with ORDINAUT_REGISTER_EXTENSION, and scopes proved by a bearer token through
// an ordinaut::Authenticator instead of the client-asserted X-Scopes header.
//
//   embed_httplib [--port N]   serve until interrupted
//   embed_httplib --self-test  serve on a free loopback port, check it over HTTP, exit
#include <chrono>
#include <strings.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include <ordinaut/auth.hpp>
#include <ordinaut/host.hpp>

namespace {

// ---- A linked-in extension -------------------------------------------------

class Greeter final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override { return {"greeter", "Greeter", "1.0.0", "Greets and ticks"}; }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::ROUTES}; }
  std::optional<ordinaut::Router> setup(ordinaut::SetupContext&) override {
    ordinaut::Router router;
    router.get("/hello", [](ordinaut::Request&) { return ordinaut::Response::json_text(200, R"({"hello":"world"})"); });
    router.get("/ticks", [](ordinaut::Request&) {
      return ordinaut::Response::event_stream([](ordinaut::StreamSink& sink) {
        for (int i = 1; i <= 3 && sink.is_open(); ++i) {
          if (!sink.write(ordinaut::format_sse_event("tick " + std::to_string(i), "tick"))) return;
        }
      });
    });
    return router;
  }
};

}  // namespace

ORDINAUT_REGISTER_EXTENSION("greeter", Greeter);

namespace {

// ---- The server adapter ----------------------------------------------------

// StreamSink over httplib's DataSink: write() flushes a chunk; false once the
// client has gone.
class HttplibSink final : public ordinaut::StreamSink {
 public:
  explicit HttplibSink(httplib::DataSink& sink) : sink_(sink) {}
  bool write(std::string_view data) override {
    if (open_) open_ = sink_.write(data.data(), data.size());
    return open_;
  }
  bool is_open() const override { return open_ && sink_.is_writable(); }

 private:
  httplib::DataSink& sink_;
  bool open_ = true;
};

ordinaut::Request to_request(const httplib::Request& in) {
  ordinaut::Request r;
  r.method = in.method;
  // The raw target, still percent-encoded: the host decodes exactly once.
  const std::string& target = in.target.empty() ? in.path : in.target;
  const auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query_string = target.substr(q + 1);
  for (const auto& [name, value] : in.headers) r.headers.add(name, value);
  r.body = in.body;
  r.remote_addr = in.remote_addr;
  return r;
}

void write_response(ordinaut::Response&& out, httplib::Response& res) {
  res.status = out.status;
  std::string content_type = "application/octet-stream";
  for (const auto& [name, value] : out.headers.list()) {
    if (strcasecmp(name.c_str(), "Content-Type") == 0) {
      content_type = value;  // httplib sets it with the body
    } else {
      res.set_header(name, value);
    }
  }
  if (out.stream) {
    res.set_chunked_content_provider(
        content_type, [producer = std::move(out.stream)](std::size_t, httplib::DataSink& sink) {
          HttplibSink adapter(sink);
          producer(adapter);  // holds this server thread until the stream ends
          sink.done();
          return true;
        });
  } else {
    res.set_content(std::move(out.body), content_type);
  }
}

// In production the token would be verified (signature, expiry) and its
// claims mapped to scopes (ordinaut::BearerAuthenticator does that for static
// tokens and JWTs); a fixed table stands in for that here.
class SessionAuthenticator final : public ordinaut::Authenticator {
 public:
  ordinaut::Result<ordinaut::Principal> authenticate(const ordinaut::Request& request) const override {
    if (request.header("Authorization") == "Bearer reader-token") {
      return ordinaut::Principal{"reader", "token", {"ext:greeter:routes"}};
    }
    if (request.header("Authorization").empty()) return ordinaut::make_error("missing_token", "a bearer token is required");
    return ordinaut::make_error("invalid_token", "unknown token");  // never echo the token
  }
};

int self_test(httplib::Server& server) {
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port < 0) return 2;
  std::thread serving([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  httplib::Client client("127.0.0.1", port);
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += ok ? 0 : 1;
  };

  auto denied = client.Get("/ext/greeter/hello");
  expect(denied && denied->status == 401 && denied->get_header_value("WWW-Authenticate").starts_with("Bearer"),
         "GET /ext/greeter/hello without a token is 401 with a Bearer challenge");
  auto asserted = client.Get("/ext/greeter/hello", {{"X-Scopes", "ext:greeter:routes"}});
  expect(asserted && asserted->status == 401, "X-Scopes is ignored: the authenticator decides");
  httplib::Headers auth = {{"Authorization", "Bearer reader-token"}};
  auto status = client.Get("/ext/status", auth);
  expect(status && status->status == 403 && status->body.find("ext:status") != std::string::npos,
         "GET /ext/status needs the scope ext:status, which the reader lacks");
  auto hello = client.Get("/ext/greeter/hello", auth);
  expect(hello && hello->status == 200 && hello->body == R"({"hello":"world"})", "with the token: 200");
  auto ticks = client.Get("/ext/greeter/ticks", auth);
  expect(ticks && ticks->status == 200 && ticks->body.find("data: tick 3\n\n") != std::string::npos &&
             ticks->get_header_value("Content-Type").starts_with("text/event-stream"),
         "the stream arrives through StreamSink");

  server.stop();
  serving.join();
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ordinaut::HostOptions options;
  options.read_environment = false;  // this program configures the host in code
  options.entry_grants = std::map<std::string, std::vector<std::string>>{{"greeter", {"ROUTES"}}};
  options.authenticator = std::make_shared<SessionAuthenticator>();  // scopes are then required
  ordinaut::ExtensionHost host(std::move(options));
  if (auto started = host.start(); !started) {
    std::fprintf(stderr, "extension host did not start: %s\n", started.error().message.c_str());
    return 1;
  }

  httplib::Server server;
  server.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content("my app\n", "text/plain"); });
  auto to_host = [&host](const httplib::Request& in, httplib::Response& res) {
    ordinaut::Request request = to_request(in);
    write_response(host.handle(request), res);
  };
  server.Get("/ext/.*", to_host);
  server.Post("/ext/.*", to_host);
  server.Put("/ext/.*", to_host);
  server.Patch("/ext/.*", to_host);
  server.Delete("/ext/.*", to_host);

  if (argc > 1 && std::strcmp(argv[1], "--self-test") == 0) return self_test(server);
  const int port = argc > 2 && std::strcmp(argv[1], "--port") == 0 ? std::atoi(argv[2]) : 8080;
  std::printf("listening on http://127.0.0.1:%d\n", port);
  server.listen("127.0.0.1", port);
  host.shutdown();
  return 0;
}
