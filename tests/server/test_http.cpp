// ordinaut-server over real loopback HTTP: lazy loading, scopes, errors,
// body limits, keep-alive, OpenAPI and the request log.
#include <atomic>
#include <barrier>
#include <thread>

#include "common.hpp"

using namespace server_test;

TEST_CASE("a POST as the first request to a lazy extension is served with its body") {
  auto server = start_server();
  CHECK(extension_state(server->port(), "srvtest") == "discovered");
  auto res = client(server->port())->Post("/ext/srvtest/echo", "hello lazy world", "text/plain");
  REQUIRE(res);
  CHECK(res->status == 200);
  auto doc = parse_json(res->body);
  CHECK(doc["length"].GetInt() == 16);
  CHECK(str(doc, "body") == "hello lazy world");
  CHECK(str(doc, "content_type") == "text/plain");
  CHECK(extension_state(server->port(), "srvtest") == "active");
  CHECK(server->log_lines("\"event\":\"extension_loaded\",\"extension\":\"srvtest\"").size() == 1);
}

TEST_CASE("20 concurrent first requests load the extension once and are all served") {
  auto server = start_server({"--threads", "24"});
  constexpr int kClients = 20;
  std::barrier start(kClients);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto c = client(server->port());
      start.arrive_and_wait();
      auto res = c->Get(("/ext/srvtest/items/n" + std::to_string(i)).c_str());
      if (res && res->status == 200 && res->body == R"({"id":"n)" + std::to_string(i) + "\"}") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok.load() == kClients);
  auto setups = client(server->port())->Get("/ext/srvtest/setups");
  REQUIRE(setups);
  CHECK(setups->body == R"({"setups":1})");
  CHECK(server->log_lines("\"event\":\"extension_loaded\",\"extension\":\"srvtest\"").size() == 1);
}

TEST_CASE("scopes: required with --require-scopes or ORDINAUT_REQUIRE_SCOPES, not otherwise") {
  SUBCASE("off") {
    auto server = start_server();
    auto res = client(server->port())->Get("/ext/srvtest/hello");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "hello");
  }
  for (bool by_flag : {true, false}) {
    CAPTURE(by_flag);
    auto server = by_flag ? start_server({"--require-scopes"})
                          : start_server({}, {{"ORDINAUT_REQUIRE_SCOPES", "1"}});
    auto c = client(server->port());
    auto denied = c->Get("/ext/srvtest/hello");
    REQUIRE(denied);
    CHECK(denied->status == 403);
    check_error_shape(denied->body, "forbidden");
    CHECK(denied->body.find("ext:srvtest:routes") != std::string::npos);
    auto wrong = c->Get("/ext/srvtest/hello", {{"X-Scopes", "ext:other:routes, ext:srvtest:tools"}});
    REQUIRE(wrong);
    CHECK(wrong->status == 403);
    auto allowed = c->Get("/ext/srvtest/hello", {{"X-Scopes", "ext:other:routes, ext:srvtest:routes"}});
    REQUIRE(allowed);
    CHECK(allowed->status == 200);
    CHECK(allowed->body == "hello");
    CHECK(!server->log_lines("\"audit\":true,\"event\":\"scope_denied\"").empty());
    auto status = parse_json(c->Get("/ext/status")->body);
    CHECK(status["require_scopes"].GetBool());
  }
}

TEST_CASE("unknown extension, unknown route and wrong method get the error shape") {
  auto server = start_server();
  auto c = client(server->port());
  auto res = c->Get("/ext/nosuch/anything");
  REQUIRE(res);
  CHECK(res->status == 404);
  check_error_shape(res->body, "not_found");
  CHECK(res->body.find("nosuch") != std::string::npos);

  res = c->Get("/ext/srvtest/no/such/route");
  REQUIRE(res);
  CHECK(res->status == 404);
  check_error_shape(res->body, "not_found");

  res = c->Get("/outside/ext");
  REQUIRE(res);
  CHECK(res->status == 404);
  check_error_shape(res->body, "not_found");

  res = c->Delete("/ext/srvtest/hello");
  REQUIRE(res);
  CHECK(res->status == 405);
  check_error_shape(res->body, "method_not_allowed");
  CHECK(res->get_header_value("Allow") == "GET");
}

TEST_CASE("request bodies: malformed JSON and schema violations are 400, valid bodies reach the handler") {
  auto server = start_server();
  auto c = client(server->port());
  auto res = c->Post("/ext/srvtest/items", R"({"name": )", "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  check_error_shape(res->body, "bad_request");
  CHECK(res->body.find("not valid JSON") != std::string::npos);
  CHECK(res->body.find("offset") != std::string::npos);

  res = c->Post("/ext/srvtest/items", R"({"name": 5})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  check_error_shape(res->body, "bad_request");
  CHECK(parse_json(res->body)["details"]["pointer"] == "/name");

  res = c->Post("/ext/srvtest/items", R"({"name": "kettle"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 201);
  CHECK(res->body == R"({"name":"kettle","created":true})");
}

TEST_CASE("bodies over --max-body get 413 with the error shape; the server keeps serving") {
  auto server = start_server({"--max-body", "1024"});
  auto c = client(server->port());
  auto res = c->Post("/ext/srvtest/echo", std::string(2048, 'x'), "text/plain");
  REQUIRE(res);
  CHECK(res->status == 413);
  check_error_shape(res->body, "payload_too_large");
  CHECK(parse_json(res->body)["details"]["limit"].GetInt() == 1024);

  // Chunked: the length is not known up front.
  RawConnection raw(server->port());
  std::string chunk(1000, 'y');
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  raw.send("POST /ext/srvtest/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n");
  for (int i = 0; i < 3; ++i) raw.send(size_line + chunk + "\r\n");
  raw.send("0\r\n\r\n");
  auto chunked = parse_response(raw.receive(5s));
  CHECK(chunked.status == 413);
  check_error_shape(chunked.body, "payload_too_large");

  res = c->Post("/ext/srvtest/echo", std::string(1024, 'z'), "text/plain");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(parse_json(res->body)["length"].GetInt() == 1024);
}

TEST_CASE("a throwing handler gives 500 while other routes keep answering") {
  auto server = start_server();
  auto c = client(server->port());
  for (int i = 0; i < 3; ++i) {
    auto res = c->Get("/ext/srvtest/boom");
    REQUIRE(res);
    CHECK(res->status == 500);
    check_error_shape(res->body, "internal_error");
    CHECK(res->body.find("boom on purpose") == std::string::npos);  // no internals leak to the client
    auto ok = c->Get("/ext/srvtest/hello");
    REQUIRE(ok);
    CHECK(ok->status == 200);
  }
  CHECK(extension_state(server->port(), "srvtest") == "active");
  CHECK(!server->log_lines("boom on purpose").empty());
  auto health = c->Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE("path parameters come decoded from the raw target, separators cannot be smuggled") {
  auto server = start_server();
  auto c = client(server->port());
  auto res = c->Get("/ext/srvtest/items/a%20b%C3%A9");
  REQUIRE(res);
  CHECK(res->body == "{\"id\":\"a b\xC3\xA9\"}");
  res = c->Get("/ext/srvtest/files/docs/read%20me.txt");
  REQUIRE(res);
  CHECK(res->body == R"({"path":"docs/read me.txt"})");
  // httplib decodes its own req.path; %2F must not become a separator.
  res = c->Get("/ext/srvtest/files/a%2Fb");
  REQUIRE(res);
  CHECK(res->status == 404);
  res = c->Get("/ext/srvtest/items/x?ignored=%2F");
  REQUIRE(res);
  CHECK(res->body == R"({"id":"x"})");
}

TEST_CASE("keep-alive and pipelining: many requests on one connection, each answered promptly") {
  auto server = start_server();
  auto c = client(server->port());
  c->set_keep_alive(true);
  REQUIRE(c->Get("/ext/srvtest/hello"));  // loads srvtest
  // Without TCP_NODELAY each of these waits for a delayed ACK (~40 ms).
  const auto t0 = Clock::now();
  for (int i = 0; i < 30; ++i) {
    auto res = c->Get("/ext/srvtest/hello");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Connection") != "close");
  }
  const auto elapsed = Clock::now() - t0;
  CHECK(elapsed < 600ms);

  RawConnection raw(server->port());
  raw.send("GET /ext/srvtest/items/1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /ext/srvtest/items/2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string both = raw.receive(5s, R"({"id":"2"})");
  CHECK(both.find(R"({"id":"1"})") != std::string::npos);
  CHECK(both.find(R"({"id":"2"})") != std::string::npos);
  CHECK(!raw.eof());
}

TEST_CASE("the pool has --threads workers") {
  auto timed = [](const char* threads) {
    auto server = start_server({"--threads", threads});
    REQUIRE(client(server->port())->Get("/ext/srvtest/hello"));
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) {
      ts.emplace_back([&] { client(server->port())->Get("/ext/srvtest/slow?ms=400"); });
    }
    for (auto& t : ts) t.join();
    return Clock::now() - t0;
  };
  CHECK(timed("2") >= 780ms);  // the third request waits for a free worker
  CHECK(timed("4") < 780ms);
}

TEST_CASE("a connection that stops sending is closed after --read-timeout") {
  auto server = start_server({"--read-timeout", "1"});
  RawConnection raw(server->port());
  raw.send("GET /ext/srvtest/hel");
  const auto t0 = Clock::now();
  raw.receive(5s);
  CHECK(raw.eof());
  const auto waited = Clock::now() - t0;
  CHECK(waited >= 800ms);
  CHECK(waited < 3s);
}

TEST_CASE("a client that stops reading is dropped after --write-timeout and its worker is freed") {
  auto server = start_server({"--threads", "1", "--write-timeout", "1"});
  REQUIRE(client(server->port())->Get("/ext/srvtest/hello"));
  RawConnection stalled(server->port());
  // 64 MiB is far more than the loopback socket buffers hold.
  stalled.send("GET /ext/srvtest/big?mb=64 HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::this_thread::sleep_for(200ms);
  const auto t0 = Clock::now();
  auto res = client(server->port())->Get("/ext/srvtest/hello");  // waits for the only worker
  REQUIRE(res);
  CHECK(res->status == 200);
  const auto waited = Clock::now() - t0;
  CHECK(waited >= 500ms);
  CHECK(waited < 8s);
}

TEST_CASE("GET /ext/openapi.json describes mounted routes and changes when a lazy extension loads") {
  auto server = start_server();
  auto c = client(server->port());
  auto before = c->Get("/ext/openapi.json");
  REQUIRE(before);
  CHECK(before->status == 200);
  CHECK(before->get_header_value("Content-Type") == "application/json");
  auto doc = parse_json(before->body);
  CHECK(str(doc, "openapi").rfind("3.", 0) == 0);
  REQUIRE(doc["info"].IsObject());
  CHECK(doc["info"].HasMember("title"));
  CHECK(doc["info"].HasMember("version"));
  REQUIRE(doc["paths"].IsObject());
  CHECK(doc["paths"].HasMember("/ext/status"));
  CHECK(doc["paths"].HasMember("/ext/srvtest/health"));
  CHECK(!doc["paths"].HasMember("/ext/srvtest/items/{id}"));
  // The run-time management API is described too.
  for (const char* action : {"enable", "disable", "reload"}) {
    const std::string path = std::string("/ext/_admin/extensions/{id}/") + action;
    CAPTURE(path);
    REQUIRE(doc["paths"].HasMember(path.c_str()));
    const auto& op = doc["paths"][path.c_str()]["post"];
    CHECK(str(op["parameters"][0], "name") == "id");
    CHECK(op["responses"].HasMember("200"));
    CHECK(op["responses"].HasMember("404"));
  }

  REQUIRE(c->Get("/ext/srvtest/hello"));
  auto after_res = c->Get("/ext/openapi.json");
  REQUIRE(after_res);
  auto after = parse_json(after_res->body);
  const auto& paths = after["paths"];
  REQUIRE(paths.HasMember("/ext/srvtest/items/{id}"));
  const auto& get_item = paths["/ext/srvtest/items/{id}"]["get"];
  REQUIRE(get_item["parameters"].IsArray());
  REQUIRE(get_item["parameters"].Size() == 1);
  CHECK(str(get_item["parameters"][0], "name") == "id");
  CHECK(str(get_item["parameters"][0], "in") == "path");
  CHECK(get_item["parameters"][0]["required"].GetBool());
  CHECK(get_item["responses"].HasMember("200"));

  REQUIRE(paths.HasMember("/ext/srvtest/files/{path}"));
  CHECK(str(paths["/ext/srvtest/files/{path}"]["get"]["parameters"][0], "name") == "path");

  const auto& post_items = paths["/ext/srvtest/items"]["post"];
  CHECK(str(post_items, "summary") == "Create an item");
  const auto& schema = post_items["requestBody"]["content"]["application/json"]["schema"];
  CHECK(str(schema, "type") == "object");
  CHECK(schema["required"][0] == "name");
  CHECK(post_items["responses"].HasMember("400"));
  CHECK(str(post_items["responses"]["200"]["content"]["application/json"]["schema"], "type") == "object");
  CHECK(str(paths["/ext/srvtest/hello"]["get"], "summary") == "A trivial route");
  CHECK(paths.HasMember("/ext/srvtest/echo"));
  CHECK(paths["/ext/srvtest/echo"].HasMember("post"));

  // Every $ref points into components.
  CHECK(after["components"]["schemas"].HasMember("Error"));
  CHECK(str(post_items["responses"]["default"]["content"]["application/json"]["schema"], "$ref") ==
        "#/components/schemas/Error");

  auto wrong = c->Post("/ext/openapi.json", "", "text/plain");
  REQUIRE(wrong);
  CHECK(wrong->status == 405);
}

TEST_CASE("one structured log line per request, JSON or text, and none with --no-request-log") {
  SUBCASE("json") {
    auto server = start_server({"--log-format", "json"});
    auto res = client(server->port())->Get("/ext/srvtest/items/42");
    REQUIRE(res);
    REQUIRE(client(server->port())->Get("/ext/nosuch"));
    auto lines = server->log_lines("\"event\":\"request\"");
    REQUIRE(lines.size() == 2);
    auto line = parse_json(lines[0]);
    CHECK(!str(line, "time").empty());
    CHECK(str(line, "extension") == "srvtest");
    const auto& f = line["fields"];
    CHECK(str(f, "method") == "GET");
    CHECK(str(f, "route") == "/ext/srvtest/items/{id}");
    CHECK(str(f, "path") == "/ext/srvtest/items/42");
    CHECK(f["status"].GetInt() == 200);
    CHECK(f["duration_ms"].IsNumber());
    CHECK(str(f, "extension") == "srvtest");
    auto unmatched = parse_json(lines[1]);
    CHECK(str(unmatched["fields"], "route") == "(unmatched)");
    CHECK(unmatched["fields"]["status"].GetInt() == 404);
  }
  SUBCASE("text") {
    auto server = start_server({"--log-format", "text"});
    REQUIRE(client(server->port())->Get("/ext/srvtest/items/42"));
    auto lines = server->log_lines(" request ext=srvtest GET /ext/srvtest/items/{id} 200 ");
    CHECK(lines.size() == 1);
    CHECK(server->log_lines("{\"time\"").empty());
  }
  SUBCASE("off") {
    auto server = start_server({"--no-request-log"});
    REQUIRE(client(server->port())->Get("/ext/srvtest/items/42"));
    CHECK(server->log_lines("\"event\":\"request\"").empty());
    CHECK(!server->log_lines("\"event\":\"extension_loaded\"").empty());  // other logs remain
  }
}
