// The connection layer's request checks, over raw sockets. Every refused
// request is followed, on the same connection, by a smuggled
// "GET /ext/srvtest/mark" (a route with a visible side effect): the server must
// answer the error with the error shape, close the connection, and never run
// the smuggled request.
#include <iterator>
#include <regex>
#include <string>

#include "common.hpp"

using namespace server_test;

namespace {

const std::string kSmuggled = "GET /ext/srvtest/mark HTTP/1.1\r\nHost: localhost\r\n\r\n";

int marks(int port) {
  auto res = client(port)->Get("/ext/srvtest/marks");
  REQUIRE(res);
  return parse_json(res->body)["marks"].GetInt();
}

// Responses in `text`: status lines ("HTTP/1.1 NNN ").
std::size_t responses(const std::string& text) {
  static const std::regex status_line("HTTP/1\\.1 [0-9]{3} ");
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), status_line), std::sregex_iterator()));
}

// Sends `bad` then the smuggled request; returns the one response. Checks the
// connection is closed after it and nothing else was answered.
RawResponse refused(int port, const std::string& bad, int status, const std::string& code) {
  RawConnection c(port);
  REQUIRE(c.connected());
  c.send(bad + kSmuggled);  // may fail half-way once the server closed: fine
  const std::string got = c.receive(20s);
  CHECK_MESSAGE(c.eof(), "the connection stays open after " << status);
  CHECK_MESSAGE(responses(got) == 1, got);  // the smuggled request got no answer
  RawResponse r = parse_response(got);
  CHECK(r.status == status);
  CHECK(r.headers["connection"] == "close");
  CHECK(r.headers["content-type"] == "application/json");
  if (r.status == status) check_error_shape(r.body, code);
  return r;
}

struct Server {
  std::unique_ptr<ServerProcess> process;
  int port = 0;
  explicit Server(std::vector<std::string> args = {}) : process(start_server(std::move(args))), port(process->port()) {
    REQUIRE(client(port)->Get("/ext/srvtest/hello"));  // loads srvtest
    REQUIRE(marks(port) == 0);
  }
  // The route works: the smuggled requests did not run because they were refused.
  ~Server() {
    auto res = client(port)->Get("/ext/srvtest/mark");
    CHECK(res);
    if (res) CHECK(parse_json(res->body)["marks"].GetInt() == 1);
  }
};

}  // namespace

TEST_CASE("414 for a request line over 8 KiB; the connection closes and nothing smuggled runs") {
  Server s;
  auto r = refused(s.port, "GET /ext/srvtest/hello?" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: localhost\r\n\r\n", 414,
                   "uri_too_long");
  CHECK(parse_json(r.body)["details"]["limit"].GetInt() == 8192);
  // A URI over 10 KiB, sent before its line ends: refused as the bytes arrive.
  refused(s.port, "GET /" + std::string(10 * 1024 + 10, 'b'), 414, "uri_too_long");
}

TEST_CASE("431 for a header line over 8 KiB, headers over 32 KiB, more than 100 fields") {
  Server s;
  const std::string start = "GET /ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\n";
  refused(s.port, start + "X-Big: " + std::string(9000, 'b') + "\r\n\r\n", 431, "header_fields_too_large");
  std::string many_big = start;
  for (int i = 0; i < 6; ++i) many_big += "X-Part-" + std::to_string(i) + ": " + std::string(7000, 'p') + "\r\n";
  refused(s.port, many_big + "\r\n", 431, "header_fields_too_large");
  std::string many = start;
  for (int i = 0; i < 101; ++i) many += "X-N" + std::to_string(i) + ": v\r\n";
  refused(s.port, many + "\r\n", 431, "header_fields_too_large");
  // A flood on one line: refused after 8 KiB, not buffered.
  refused(s.port, start + "X-Flood: " + std::string(1 << 20, 'f'), 431, "header_fields_too_large");
}

TEST_CASE("400 for framing a proxy and this server could read differently") {
  Server s;
  const std::string post = "POST /ext/srvtest/echo HTTP/1.1\r\nHost: localhost\r\n";
  // Two different lengths: the second request hides in the body of the shorter one.
  refused(s.port, post + "Content-Length: 5\r\nContent-Length: " + std::to_string(5 + kSmuggled.size()) + "\r\n\r\nhello",
          400, "bad_request");
  refused(s.port, post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, "bad_request");
  refused(s.port, post + "Content-Length: 1x\r\n\r\nh", 400, "bad_request");
  refused(s.port, post + "Content-Length: +5\r\n\r\nhello", 400, "bad_request");
  refused(s.port, post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400,
          "bad_request");
  refused(s.port, "GET /ext/srvtest/hello HTTP/1.1\r\n\r\n", 400, "bad_request");                        // no Host
  refused(s.port, "GET /ext/srvtest/hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request");  // two
  refused(s.port, "GET /ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\nX-A: one\r\n two\r\n\r\n", 400, "bad_request");
  refused(s.port, "GET /ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\nX-A : v\r\n\r\n", 400, "bad_request");
  refused(s.port, "GET /ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n", 400, "bad_request");
  refused(s.port, "GARBAGE\r\n\r\n", 400, "bad_request");
  refused(s.port, "GET  /ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "bad_request");
  refused(s.port, "GET ext/srvtest/hello HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "bad_request");
  refused(s.port, post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", 400, "bad_request");
  refused(s.port, "GET /ext/srvtest/hello HTTP/2.0\r\nHost: localhost\r\n\r\n", 505, "http_version_not_supported");
}

TEST_CASE("501 for a Transfer-Encoding other than chunked") {
  Server s;
  const std::string post = "POST /ext/srvtest/echo HTTP/1.1\r\nHost: localhost\r\n";
  refused(s.port, post + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "not_implemented");
  refused(s.port, post + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented");
}

TEST_CASE("413 for bodies over --max-body: declared, chunked while it streams in, and before 100 Continue") {
  Server s({"--max-body", "1024"});
  const std::string post = "POST /ext/srvtest/echo HTTP/1.1\r\nHost: localhost\r\n";
  auto r = refused(s.port, post + "Content-Length: 2048\r\n\r\n" + std::string(2048, 'x'), 413, "payload_too_large");
  CHECK(parse_json(r.body)["details"]["limit"].GetInt() == 1024);
  // 10 GB declared: refused from the head, nothing is drained.
  refused(s.port, post + "Content-Length: 10000000000\r\n\r\n", 413, "payload_too_large");
  refused(s.port, post + "Content-Length: 99999999999999999999999\r\n\r\n", 413, "payload_too_large");
  {
    // Chunked: refused once the chunks pass the limit, the end never sent.
    RawConnection c(s.port);
    c.send(post + "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; ++i) c.send("200\r\n" + std::string(512, 'c') + "\r\n");
    const std::string got = c.receive(20s);
    CHECK(c.eof());
    auto res = parse_response(got);
    CHECK(res.status == 413);
    check_error_shape(res.body, "payload_too_large");
  }
  {
    // Expect: 100-continue with a body over the limit: 413, never 100.
    RawConnection c(s.port);
    c.send(post + "Content-Length: 4096\r\nExpect: 100-continue\r\n\r\n");
    const std::string got = c.receive(20s);
    CHECK(c.eof());
    CHECK(got.find("100 Continue") == std::string::npos);
    CHECK(parse_response(got).status == 413);
  }
  {
    // Within the limit: 100 Continue, then the answer.
    RawConnection c(s.port);
    c.send(post + "Content-Length: 5\r\nExpect: 100-continue\r\nContent-Type: text/plain\r\n\r\n");
    CHECK(c.receive(20s, "\r\n\r\n").rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
    c.send("hello");
    auto res = parse_response(c.receive(20s, "}"));
    CHECK(res.status == 200);
    CHECK(parse_json(res.body)["length"].GetInt() == 5);
  }
  // Chunked within the limit still works, trailers and extensions included.
  RawConnection ok(s.port);
  ok.send(post + "Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
  auto res = parse_response(ok.receive(20s, "}"));
  CHECK(res.status == 200);
  CHECK(parse_json(res.body)["body"].GetString() == std::string("abcde"));
}

TEST_CASE("--max-body holds for every content type (form bodies over 8 KiB included)") {
  Server s({"--max-body", "65536"});
  auto c = client(s.port);
  auto res = c->Post("/ext/srvtest/echo", "a=" + std::string(40000, 'b'), "application/x-www-form-urlencoded");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(parse_json(res->body)["length"].GetInt() == 40002);
  res = c->Post("/ext/srvtest/echo", "a=" + std::string(70000, 'b'), "application/x-www-form-urlencoded");
  REQUIRE(res);
  CHECK(res->status == 413);
  CHECK(parse_json(res->body)["details"]["limit"].GetInt() == 65536);
  res = c->Post("/ext/srvtest/echo", std::string(60000, 'm'), "multipart/form-data; boundary=x");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("405 with Allow for other methods on /health and /ext/status") {
  Server s;
  for (const char* method : {"TRACE", "POST", "DELETE"}) {
    auto r = raw_request(s.port, method, "/health");
    CHECK(r.status == 405);
    CHECK(r.headers["allow"] == "GET, HEAD");
    check_error_shape(r.body, "method_not_allowed");
  }
  auto status = raw_request(s.port, "TRACE", "/ext/status");  // the host's own endpoints too
  CHECK(status.status == 405);
  CHECK(!status.headers["allow"].empty());
  auto head = raw_request(s.port, "HEAD", "/health");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
}

TEST_CASE("408 when a whole head or body takes longer than --header-timeout / --body-timeout") {
  // Bytes keep coming (so --read-timeout never fires), but too slowly in total.
  Server s({"--header-timeout", "0.5", "--body-timeout", "0.5"});
  auto drip = [&](const std::string& first, const std::string& phase) {
    RawConnection c(s.port);
    c.send(first);
    std::string got;
    for (int i = 0; i < 400 && got.empty(); ++i) {  // at most 400 bytes, one per ~50 ms
      c.send("X");
      got = c.receive(50ms);
    }
    got += c.receive(20s);
    CHECK(c.eof());
    CHECK(responses(got) == 1);
    auto r = parse_response(got);
    CHECK(r.status == 408);
    if (r.status == 408) {
      check_error_shape(r.body, "request_timeout");
      CHECK(str(parse_json(r.body)["details"], "phase") == phase);
    }
  };
  drip("GET /ext/srvtest/mark HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", "head");
  drip("POST /ext/srvtest/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n", "body");
}

TEST_CASE("pipelined requests after a good one are served; after an error, none") {
  Server s;
  RawConnection c(s.port);
  c.send("GET /ext/srvtest/items/1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
         "GET /ext/srvtest/items/2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab" +
         kSmuggled);
  const std::string got = c.receive(20s);
  CHECK(c.eof());
  CHECK(got.find(R"({"id":"1"})") != std::string::npos);
  CHECK(got.find("HTTP/1.1 400") != std::string::npos);
  CHECK(responses(got) == 2);
}
